package fsm

import "errors"

// Restore returns a connection in state, Registered (holding name) or
// Refused, as if its ALIVE2 had just been answered: the state machine of a
// kept socket handed over from another process. It steps from there as
// the original would have.
func Restore(cfg Config, state State, name string) (*Conn, error) {
	switch state {
	case Registered:
		return &Conn{cfg: cfg, state: Registered, name: name}, nil
	case Refused:
		if name != "" {
			return nil, errors.New("fsm: a refused connection holds no name")
		}
		return &Conn{cfg: cfg, state: Refused}, nil
	}
	return nil, errors.New("fsm: only a kept connection (Registered or Refused) is restored, not " + state.String())
}
