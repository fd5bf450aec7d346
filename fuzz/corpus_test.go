package fuzz_test

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gopmd/gopmd/epmd/wire"
)

var genCorpus = flag.Bool("gencorpus", false, "rewrite the generated seed files in testdata/fuzz")

// TestGenerateCorpus writes the generated part of the committed seed
// corpus, testdata/fuzz/FuzzXxx/gen-*: canonical encodings at the limits
// (largest name, extra, frame), tricky reply texts, long transcripts. The
// stock transcripts themselves are f.Add seeds in the targets. Run
//
//	go test ./fuzz -run=TestGenerateCorpus -gencorpus
//
// after changing the generators; without -gencorpus it only checks that
// the files on disk are what the generators make.
func TestGenerateCorpus(t *testing.T) {
	want := generatedCorpus(t)
	for target, files := range want {
		dir := filepath.Join("testdata", "fuzz", target)
		if *genCorpus {
			old, _ := filepath.Glob(filepath.Join(dir, "gen-*"))
			for _, f := range old {
				os.Remove(f)
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for name, content := range files {
			path := filepath.Join(dir, "gen-"+name)
			if *genCorpus {
				if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(path)
			if err != nil || string(got) != content {
				t.Errorf("%s is missing or stale (%v); run go test ./fuzz -run=TestGenerateCorpus -gencorpus", path, err)
			}
		}
	}
}

// corpusFile encodes one input in the format of go test fuzz v1.
func corpusFile(args ...any) string {
	var b strings.Builder
	b.WriteString("go test fuzz v1\n")
	for _, a := range args {
		switch a := a.(type) {
		case []byte:
			fmt.Fprintf(&b, "[]byte(%q)\n", a)
		case string:
			fmt.Fprintf(&b, "string(%q)\n", a)
		case bool:
			fmt.Fprintf(&b, "bool(%v)\n", a)
		default:
			panic(fmt.Sprintf("corpusFile: %T", a))
		}
	}
	return b.String()
}

func mustEncode(t *testing.T, m interface {
	AppendBinary([]byte) ([]byte, error)
}) []byte {
	t.Helper()
	b, err := m.AppendBinary(nil)
	if err != nil {
		t.Fatalf("encoding %#v: %v", m, err)
	}
	return b
}

func generatedCorpus(t *testing.T) map[string]map[string]string {
	maxName := strings.Repeat("😀", wire.MaxNameChars) // 255 characters, 1020 bytes
	maxExtra := strings.Repeat("\x00\xff", wire.MaxSymLen/2)
	alive2Max := mustEncode(t, &wire.Alive2Req{Node: wire.Node{Name: maxName, Port: 65535, Type: wire.NodeHidden,
		Proto: 255, High: 65535, Low: 65535, Extra: maxExtra}})
	alive2Empty := mustEncode(t, &wire.Alive2Req{Node: wire.Node{Port: 1, Type: wire.NodeNormal, High: 6, Low: 5}})
	port2Max := mustEncode(t, &wire.PortPlease2Req{Name: strings.Repeat("é", 254)})
	stopEmpty := mustEncode(t, &wire.StopReq{})
	namesMax := cat("n", strings.Repeat("\x00", wire.MaxRequestLen-1))

	tricky := []string{"a b", "x at port 1", "name ", "<>", "> at port 9, fd = 3", ">, port = 2, fd = 1 ", "é😀", "\n", ""}
	var nodes []wire.NameEntry
	var active, old []wire.DumpEntry
	for i, n := range tricky {
		if n != "\n" {
			nodes = append(nodes, wire.NameEntry{Name: n, Port: uint16(i * 7919)})
		}
		e := wire.DumpEntry{Name: n, Port: uint16(65535 - i), Fd: i*1000 - 1}
		if i%2 == 0 {
			active = append(active, e)
		} else {
			old = append(old, e)
		}
	}
	namesTricky := mustEncode(t, &wire.NamesResp{Port: 70000, Nodes: nodes})
	dumpTricky := mustEncode(t, &wire.DumpResp{Port: 4369, Active: active, Old: old})
	port2RespMax := mustEncode(t, &wire.Port2Resp{Node: wire.Node{Name: maxName, Port: 1, Type: 'h', High: 6, Low: 6, Extra: maxExtra}})

	var addrs13, addrs14 []string
	for i := range 14 {
		a := fmt.Sprintf("10.0.0.%d", i+1)
		if i%2 == 1 {
			a = fmt.Sprintf("fd00::%x", i+1)
		}
		if i < 13 {
			addrs13 = append(addrs13, a)
		}
		addrs14 = append(addrs14, a)
	}

	// Long transcripts: a fixed PRNG, ops weighted towards registration
	// and closing so that names churn through the remembered cap.
	rng := rand.New(rand.NewPCG(4369, 14369))
	script := func(n int, flags byte) []byte {
		b := []byte{flags, byte(rng.IntN(4))}
		for range n {
			op := byte(rng.IntN(16)) | byte(rng.IntN(4))<<4
			if rng.IntN(3) == 0 {
				op = op&0xf0 | opAlive2
			}
			b = append(b, op)
			switch op & 15 {
			case opAlive2, opAlive2Bis:
				b = append(b, byte(rng.IntN(12)), byte(rng.IntN(40)), 0, byte(rng.IntN(4)))
			case opPort2, opStop, opMisc:
				b = append(b, byte(rng.IntN(12)))
			case opClock:
				b = append(b, byte(rng.IntN(256)), byte(rng.IntN(40)))
			case opDecode:
				b = append(b, 3, 's', 'a', 0)
			}
		}
		return b
	}

	return map[string]map[string]string{
		"FuzzDecodeRequest": {
			"alive2-max":            corpusFile(alive2Max),
			"alive2-empty-name":     corpusFile(alive2Empty),
			"port2-254-chars":       corpusFile(port2Max),
			"stop-empty-name":       corpusFile(stopEmpty),
			"names-max-frame":       corpusFile(namesMax),
			"alive2-max-plus-extra": corpusFile(cat(alive2Max, "trailing")),
		},
		"FuzzFramerSplit": {
			"names-max-byte-reads":   corpusFile(frame(namesMax), []byte{1, 1, 1, 1, 1, 1, 1}, false),
			"names-max-and-more":     corpusFile(cat(frame(namesMax), frame(namesMax)), []byte{255}, true),
			"alive2-max-split":       corpusFile(frame(alive2Max), []byte{2, 200, 0, 0, 255}, false),
			"length-3058-full":       corpusFile(cat(0x0b, 0xf2, namesMax, "n"), []byte{}, true),
			"trailing-after-header":  corpusFile(cat(frame([]byte("zalpha")), "zz"), []byte{2}, false),
			"trailing-in-first-read": corpusFile(cat(frame([]byte("zalpha")), "zz"), []byte{3}, false),
		},
		"FuzzConnTranscript": {
			"churn-1": corpusFile(script(200, 0)),
			"churn-2": corpusFile(script(200, 1|1<<2)),
			"churn-3": corpusFile(script(300, 1|2|2<<2)),
			"churn-4": corpusFile(script(100, 2<<2)),
		},
		"FuzzClientReplies": {
			"names-tricky":    corpusFile(namesTricky),
			"dump-tricky":     corpusFile(dumpTricky),
			"port2-max":       corpusFile(port2RespMax),
			"names-leading-0": corpusFile(cat(0, 0, 0x11, 0x11, "name a at port 007\n")),
			"dump-signed-fd":  corpusFile(cat(0, 0, 0x11, 0x11, "active name     <a> at port 1, fd = -0\n\x00")),
		},
		"FuzzAddressList": {
			"13-mixed":       corpusFile(strings.Join(addrs13, ",")),
			"14-mixed":       corpusFile(strings.Join(addrs14, " , ")),
			"loopback-forms": corpusFile("0:0:0:0:0:0:0:1 ::ffff:127.0.0.1 127.0.0.1 127.000.000.001 ::0:1"),
		},
		"FuzzServerTranscript": {
			"alive2-max":        corpusFile(frame(alive2Max), false),
			"names-max-frame":   corpusFile(frame(namesMax), true),
			"alive2-empty-name": corpusFile(frame(alive2Empty), false),
			"port2-254-chars":   corpusFile(frame(port2Max), false),
		},
	}
}
