package meta

import (
	"context"
	"slices"
	"sync"
)

// keyMutex is a mutex per key whose waits honour a context.
type keyMutex struct {
	mu    sync.Mutex // guards locks
	locks map[string]*keyLock
}

type keyLock struct {
	ch   chan struct{} // holds a token while the key is locked
	refs int           // holders and waiters
}

// lock locks every key, in a fixed order so that two callers locking the
// same keys cannot deadlock.
func (m *keyMutex) lock(ctx context.Context, keys ...string) (unlock func(), err error) {
	keys = slices.Clone(keys)
	slices.Sort(keys)
	keys = slices.Compact(keys)
	for i, k := range keys {
		if err := m.lockOne(ctx, k); err != nil {
			for _, held := range keys[:i] {
				m.unlockOne(held)
			}
			return nil, err
		}
	}
	return func() {
		for _, k := range keys {
			m.unlockOne(k)
		}
	}, nil
}

func (m *keyMutex) lockOne(ctx context.Context, key string) error {
	m.mu.Lock()
	if m.locks == nil {
		m.locks = map[string]*keyLock{}
	}
	l, ok := m.locks[key]
	if !ok {
		l = &keyLock{ch: make(chan struct{}, 1)}
		m.locks[key] = l
	}
	l.refs++
	m.mu.Unlock()
	select {
	case l.ch <- struct{}{}:
		return nil
	case <-ctx.Done():
		m.mu.Lock()
		m.release(key, l)
		m.mu.Unlock()
		return ctx.Err()
	}
}

func (m *keyMutex) unlockOne(key string) {
	m.mu.Lock()
	l := m.locks[key]
	<-l.ch
	m.release(key, l)
	m.mu.Unlock()
}

// release drops a reference to l; m.mu is held.
func (m *keyMutex) release(key string, l *keyLock) {
	if l.refs--; l.refs == 0 {
		delete(m.locks, key)
	}
}
