package server

import (
	"context"
	"strings"
	"testing"
)

// TestOwnershipChecked: the owner's state is used on the owner goroutine
// only, and the package's tests check it: a handler called from another
// goroutine panics, on either backend.
func TestOwnershipChecked(t *testing.T) {
	for _, backend := range []string{BackendPortable, defaultBackend} {
		s := New(Config{Backend: backend})
		func() {
			defer func() {
				r := recover()
				if msg, _ := r.(string); !strings.Contains(msg, "owner state used on goroutine") {
					t.Errorf("%s: drain off the owner goroutine: recovered %v, want the ownership panic", backend, r)
				}
			}()
			s.drain()
		}()
		// On the owner, through the inbox, the same call is fine.
		s.query(func() { s.drain() })
		s.Shutdown(context.Background())
	}
}
