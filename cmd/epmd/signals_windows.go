package main

import "os"

// fatalSignals: Windows delivers none of these signals to a process.
var fatalSignals = []os.Signal{}
