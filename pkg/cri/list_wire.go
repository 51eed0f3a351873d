package cri

import (
	"sync"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The lists kubelet calls every second answer with the items the list
// cache keeps, one shared message per unchanged record, and encoding them
// again was most of what was left of each call: protobuf walks every
// label and annotation map by reflection. Each item is encoded once, when
// it is built, and the CRI server's codec writes a list response as the
// items' bytes, each under the response's field 1 (ListPodSandboxResponse
// items, ListContainersResponse containers), which is the message's
// encoding. Everything else goes through the proto codec.

// wireCache is the encoding of each shared item, by its message.
type wireCache struct {
	m sync.Map // proto.Message → []byte
}

// put encodes msg and keeps its bytes; a message that does not encode is
// left to the codec, which reports the error.
func (w *wireCache) put(msg proto.Message) {
	if b, err := proto.Marshal(msg); err == nil {
		w.m.Store(msg, b)
	}
}

// drop forgets msg: its record changed or went.
func (w *wireCache) drop(msg proto.Message) {
	if msg != nil {
		w.m.Delete(msg)
	}
}

func (w *wireCache) get(msg proto.Message) ([]byte, bool) {
	b, ok := w.m.Load(msg)
	if !ok {
		return nil, false
	}
	return b.([]byte), true
}

// listCodec is the CRI server's codec: the proto codec, but for the two
// list responses, written from their items' kept bytes.
type listCodec struct {
	proto encoding.CodecV2
	pods  *wireCache
	ctrs  *wireCache
}

// Codec returns the codec the CRI's gRPC server must use
// (grpc.ForceServerCodecV2).
func (s *Service) Codec() encoding.CodecV2 {
	return listCodec{proto: encoding.GetCodecV2("proto"), pods: &s.listed.pods.wire, ctrs: &s.listed.containers.wire}
}

func (c listCodec) Name() string { return c.proto.Name() }

func (c listCodec) Unmarshal(data mem.BufferSlice, v any) error { return c.proto.Unmarshal(data, v) }

func (c listCodec) Marshal(v any) (mem.BufferSlice, error) {
	switch r := v.(type) {
	case *runtime.ListPodSandboxResponse:
		return appendItems(c.pods, r.GetItems())
	case *runtime.ListContainersResponse:
		return appendItems(c.ctrs, r.GetContainers())
	}
	return c.proto.Marshal(v)
}

// appendItems encodes a message whose only field is field 1, repeated
// items: each item's kept bytes, or its encoding now.
func appendItems[T proto.Message](w *wireCache, items []T) (mem.BufferSlice, error) {
	encs := make([][]byte, len(items))
	size := 0
	for i, it := range items {
		enc, ok := w.get(it)
		if !ok {
			var err error
			if enc, err = proto.Marshal(it); err != nil {
				return nil, err
			}
		}
		encs[i] = enc
		size += protowire.SizeTag(1) + protowire.SizeBytes(len(enc))
	}
	b := make([]byte, 0, size)
	for _, enc := range encs {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendBytes(b, enc)
	}
	return mem.BufferSlice{mem.SliceBuffer(b)}, nil
}
