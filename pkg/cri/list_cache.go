package cri

import (
	"bytes"
	"sync"

	"github.com/cri-runtime/cri-runtime/pkg/meta"
)

// decodeCache keeps the decoded config and info of each container by ID,
// for ListContainers, which kubelet's relist calls every second: decoding
// every record's protobuf config again was most of the call. An entry is
// used only while the record's extensions are the bytes it was decoded
// from; the decoded values are shared, read-only.
type decodeCache struct {
	mu sync.Mutex
	m  map[string]decodedContainer
}

type decodedContainer struct {
	rawConfig, rawInfo []byte
	rec                containerRecord
}

// decode is decodeContainer of c, from the cache when c's extensions are
// unchanged.
func (dc *decodeCache) decode(c meta.Container) (containerRecord, error) {
	rawConfig, rawInfo := c.Extensions[ExtConfig], c.Extensions[ExtInfo]
	dc.mu.Lock()
	e, ok := dc.m[c.ID]
	dc.mu.Unlock()
	if ok && bytes.Equal(e.rawConfig, rawConfig) && bytes.Equal(e.rawInfo, rawInfo) {
		return containerRecord{Container: c, config: e.rec.config, info: e.rec.info}, nil
	}
	r, err := decodeContainer(c)
	if err != nil {
		return r, err
	}
	dc.mu.Lock()
	if dc.m == nil {
		dc.m = map[string]decodedContainer{}
	}
	dc.m[c.ID] = decodedContainer{rawConfig: rawConfig, rawInfo: rawInfo, rec: containerRecord{config: r.config, info: r.info}}
	dc.mu.Unlock()
	return r, nil
}

// keepOnly drops the entries of containers not in ids: those removed.
func (dc *decodeCache) keepOnly(ids map[string]bool) {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	for id := range dc.m {
		if !ids[id] {
			delete(dc.m, id)
		}
	}
}
