package wire_test

import (
	"strconv"
	"testing"

	"github.com/gopmd/gopmd/epmd/wire"
)

func BenchmarkNamesResp1000(b *testing.B) {
	m := &wire.NamesResp{Port: 4369}
	for i := range 1000 {
		m.Nodes = append(m.Nodes, wire.NameEntry{Name: "node" + strconv.Itoa(i), Port: uint16(30000 + i)})
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.AppendBinary(nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPort2Resp(b *testing.B) {
	m := &wire.Port2Resp{Node: wire.Node{Name: "alpha", Port: 5555, Type: 77, High: 6, Low: 5}}
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.AppendBinary(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodePortPlease2(b *testing.B) {
	body := []byte("zalpha")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := wire.DecodeRequest(body); err != nil {
			b.Fatal(err)
		}
	}
}
