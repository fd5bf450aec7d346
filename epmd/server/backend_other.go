//go:build !linux

package server

import "errors"

const defaultBackend = BackendPortable

type epollBackend struct{ backend }

func newEpoll(*Server) (*epollBackend, error) {
	return nil, errors.New("server: the epoll backend is Linux only; use " + BackendPortable)
}
