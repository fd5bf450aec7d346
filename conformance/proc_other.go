//go:build !linux

package conformance

// On systems other than Linux there is no parent-death signal and no
// subreaper: a -daemon daemon is reparented to init, which reaps it.

func becomeSubreaper() {}

func reapOrphans() {}

func killOrphanListener(port int) {}
