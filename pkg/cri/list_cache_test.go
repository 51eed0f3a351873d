package cri

import (
	"testing"

	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-runtime/cri-runtime/pkg/meta"
)

// The cache serves a container's decoded config while its record's
// extensions are unchanged, decodes again once they change, and forgets
// the containers no longer listed.
func TestDecodeCache(t *testing.T) {
	rec := func(name string) meta.Container {
		b, err := proto.Marshal(&runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: name}})
		if err != nil {
			t.Fatal(err)
		}
		return meta.Container{ID: "c1", Extensions: map[string][]byte{ExtConfig: b, ExtInfo: []byte(`{}`)}}
	}
	var dc decodeCache
	first, err := dc.decode(rec("a"))
	if err != nil || first.config.GetMetadata().GetName() != "a" {
		t.Fatalf("%+v, %v", first.config, err)
	}
	again, _ := dc.decode(rec("a"))
	if again.config != first.config {
		t.Error("an unchanged record was decoded again")
	}
	changed, _ := dc.decode(rec("b"))
	if changed.config.GetMetadata().GetName() != "b" {
		t.Errorf("a changed record: %+v, want the new config", changed.config)
	}
	if _, err := dc.decode(meta.Container{ID: "bad", Extensions: map[string][]byte{ExtConfig: []byte{0xff}}}); err == nil {
		t.Error("a config that does not decode gave no error")
	}
	dc.keepOnly(map[string]bool{})
	if len(dc.m) != 0 {
		t.Errorf("%d entries left after keepOnly of none", len(dc.m))
	}
}
