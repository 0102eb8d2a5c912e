// Package keylock serialises work per key (one fence per host, one
// election per pool) with waits that give up with their context.
package keylock

import (
	"context"
	"sync"
)

// Set holds one lock per key; the zero value is ready.
type Set struct {
	mu    sync.Mutex
	locks map[string]chan struct{}
}

// Lock waits for key's lock or for ctx; the returned func releases it.
func (s *Set) Lock(ctx context.Context, key string) (unlock func(), err error) {
	s.mu.Lock()
	if s.locks == nil {
		s.locks = map[string]chan struct{}{}
	}
	ch, ok := s.locks[key]
	if !ok {
		ch = make(chan struct{}, 1)
		s.locks[key] = ch
	}
	s.mu.Unlock()
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
