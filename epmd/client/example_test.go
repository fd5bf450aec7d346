package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"time"

	"github.com/gopmd/gopmd/epmd/client"
	"github.com/gopmd/gopmd/epmd/server"
	"github.com/gopmd/gopmd/epmd/wire"
)

// The examples that talk to a daemon on port 4369 have no Output comment:
// they are compiled by go test but not run. Example runs its own daemon.

// A Go program registered as a hidden node, looked up and listed, against
// a gopmd daemon run in the same process on a port of its own (package
// github.com/gopmd/gopmd/epmd/server). With a real epmd, use
// client.NewLocal(4369) and leave the server out.
func Example() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := server.New(server.Config{Port: wire.DefaultPort})
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background())

	c := &client.Client{Addr: ln.Addr().String(), Timeout: 5 * time.Second}
	ctx := context.Background()

	// Register: the node stays registered while reg is open.
	reg, err := c.Register(ctx, wire.Node{
		Name:  "gonode",
		Port:  5000, // where this program would accept distribution connections
		Type:  wire.NodeHidden,
		Proto: wire.ProtoTCP4,
		High:  6,
		Low:   5,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer reg.Close()
	fmt.Println("registered gonode, type", reg.Node().Type)

	// Look up: what an Erlang node asks before connecting to gonode@host.
	node, err := c.Lookup(ctx, "gonode")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("gonode is at port", node.Port)

	// List: what "epmd -names" prints.
	port, nodes, err := c.Names(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("epmd: up and running on port %d with data:\n", port)
	for _, n := range nodes {
		fmt.Printf("name %s at port %d\n", n.Name, n.Port)
	}

	_, err = c.Lookup(ctx, "nosuchnode")
	fmt.Println(errors.Is(err, client.ErrNotFound))
	// Output:
	// registered gonode, type 72
	// gonode is at port 5000
	// epmd: up and running on port 4369 with data:
	// name gonode at port 5000
	// true
}

func ExampleLocal() {
	fmt.Println(client.Local(wire.DefaultPort))
	// Output: [[::1]:4369 127.0.0.1:4369]
}

// Print what "epmd -names" prints.
func ExampleClient_Names() {
	c := client.NewLocal(wire.DefaultPort) // [::1]:4369, then 127.0.0.1:4369
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	port, nodes, err := c.Names(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("epmd: up and running on port %d with data:\n", port)
	for _, n := range nodes {
		fmt.Printf("name %s at port %d\n", n.Name, n.Port)
	}
}

// Find the distribution port of the node rabbit@localhost. epmd knows only
// the part of the node name before the '@'.
func ExampleClient_Lookup() {
	c := &client.Client{Addr: "127.0.0.1:4369", Timeout: 5 * time.Second}

	node, err := c.Lookup(context.Background(), "rabbit")
	switch {
	case errors.Is(err, client.ErrNotFound):
		fmt.Println("rabbit is not running")
	case err != nil:
		log.Fatal(err)
	default:
		fmt.Printf("rabbit listens on port %d, distribution versions %d to %d\n",
			node.Port, node.Low, node.High)
	}
}

// Publish a Go program that accepts Erlang distribution connections on port
// 5000 as the hidden node "gonode", for as long as it runs.
func ExampleClient_Register() {
	c := &client.Client{Addr: "127.0.0.1:4369", Timeout: 5 * time.Second}

	reg, err := c.Register(context.Background(), wire.Node{
		Name:  "gonode",
		Port:  5000,
		Type:  wire.NodeHidden,
		Proto: wire.ProtoTCP4,
		High:  6,
		Low:   5,
	})
	if errors.Is(err, client.ErrRefused) {
		log.Fatal("epmd refused the name: already registered, or invalid")
	}
	if err != nil {
		log.Fatal(err)
	}
	defer reg.Close() // unregisters
	fmt.Println("registered with creation", reg.Creation())

	<-reg.Done() // epmd went away, or someone ran "epmd -stop gonode"
	log.Printf("registration ended: %v", reg.Err())
}

func ExampleClient_Dump() {
	c := &client.Client{Addr: "127.0.0.1:4369", Timeout: 5 * time.Second}

	dump, err := c.Dump(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range dump.Active {
		fmt.Printf("%s at port %d (epmd fd %d)\n", e.Name, e.Port, e.Fd)
	}
	for _, e := range dump.Old {
		fmt.Printf("%s, gone, was at port %d\n", e.Name, e.Port)
	}
}

// What "epmd -kill" does.
func ExampleClient_Kill() {
	c := client.NewLocal(wire.DefaultPort)

	ok, err := c.Kill(context.Background())
	switch {
	case err != nil:
		log.Fatal(err)
	case ok:
		fmt.Println("Killed")
	default:
		fmt.Println("Killing not allowed - living nodes in database.")
	}
}

// Unregister a node by force, as "epmd -stop NAME" does. The daemon must run
// with -relaxed_command_check; otherwise it closes without a reply.
func ExampleClient_Stop() {
	c := client.NewLocal(wire.DefaultPort)

	stopped, err := c.Stop(context.Background(), "gonode")
	switch {
	case errors.Is(err, client.ErrClosed):
		log.Fatal("epmd refused: start it with -relaxed_command_check")
	case err != nil:
		log.Fatal(err)
	case stopped:
		fmt.Println("gonode unregistered")
	default:
		fmt.Println("no node called gonode")
	}
}

func ExampleRegisterError() {
	var err error = &client.RegisterError{Name: "gonode", Result: 1, Creation: wire.ErrorCreation}

	var re *client.RegisterError
	fmt.Println(errors.Is(err, client.ErrRefused), errors.As(err, &re), re.Result)
	fmt.Println(err)
	// Output:
	// true true 1
	// epmd: registration of "gonode" refused (result 1)
}
