package fsm_test

import (
	"fmt"

	"github.com/gopmd/gopmd/epmd/registry"
	"github.com/gopmd/gopmd/epmd/wire"
	"github.com/gopmd/gopmd/fsm"
)

// show prints an action the way a server log might.
func show(a fsm.Action) {
	switch a := a.(type) {
	case fsm.Send:
		b, _ := a.Resp.AppendBinary(nil)
		if _, text := a.Resp.(*wire.NamesResp); text {
			fmt.Printf("send % x %q\n", b[:4], b[4:])
		} else {
			fmt.Printf("send % x\n", b)
		}
	case fsm.RegisteredNode:
		fmt.Printf("registered %s port %d creation %d\n", a.Node.Name, a.Node.Port, a.Creation)
	case fsm.Close:
		fmt.Printf("close (%s)\n", a.Reason)
	default:
		fmt.Printf("%T\n", a)
	}
}

// A node registers; a client then lists the registered nodes. The server
// would write each Send and close the client's socket on Close.
func ExampleConn_Step() {
	reg := registry.New(registry.MaxRemembered)

	node := fsm.New(fsm.Config{ID: 1, Fd: 5, Local: true, Port: 4369})
	req := &wire.Alive2Req{Node: wire.Node{
		Name: "alpha", Port: 5555, Type: wire.NodeNormal, Proto: wire.ProtoTCP4, High: 6, Low: 5,
	}}
	for _, a := range node.Step(reg, fsm.Received{Req: req, Now: 1700000000}) {
		show(a)
	}
	fmt.Println("node:", node.State())

	client := fsm.New(fsm.Config{ID: 2, Fd: 6, Port: 4369})
	for _, a := range client.Step(reg, fsm.Received{Req: &wire.NamesReq{}}) {
		show(a)
	}
	fmt.Println("client:", client.State())
	// Output:
	// registered alpha port 5555 creation 1700000001
	// send 76 00 65 53 f1 01
	// node: Registered
	// send 00 00 11 11 "name alpha at port 5555\n"
	// close (done)
	// client: Closed
}
