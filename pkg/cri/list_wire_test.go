package cri

import (
	"testing"

	"google.golang.org/grpc/encoding"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The codec's list responses decode to the responses it was given, from
// kept bytes or not, and the kept bytes are the ones written: a changed
// item's stale bytes would reach kubelet.
func TestListCodec(t *testing.T) {
	var pods, ctrs wireCache
	c := listCodec{proto: encoding.GetCodecV2("proto"), pods: &pods, ctrs: &ctrs}
	kept := &runtime.PodSandbox{Id: "a", Metadata: &runtime.PodSandboxMetadata{Name: "a", Uid: "u"},
		State: runtime.PodSandboxState_SANDBOX_READY, CreatedAt: 7, Labels: map[string]string{"k": "v", "x": "y"}, Annotations: map[string]string{"an": "n"}}
	pods.put(kept)
	fresh := &runtime.PodSandbox{Id: "b", RuntimeHandler: "crun"}
	for _, resp := range []proto.Message{
		&runtime.ListPodSandboxResponse{Items: []*runtime.PodSandbox{kept, fresh}},
		&runtime.ListPodSandboxResponse{},
		&runtime.ListContainersResponse{Containers: []*runtime.Container{{Id: "c", PodSandboxId: "a", Labels: map[string]string{"l": "1"}}}},
		&runtime.VersionResponse{RuntimeName: "x"},
	} {
		buf, err := c.Marshal(resp)
		if err != nil {
			t.Fatal(err)
		}
		got := resp.ProtoReflect().New().Interface()
		if err := c.Unmarshal(buf, got); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(got, resp) {
			t.Errorf("%T: decoded %v, want %v", resp, got, resp)
		}
	}
	// The kept bytes are used: a stale entry shows.
	pods.put(&runtime.PodSandbox{Id: "stale"})
	stale, _ := pods.get(&runtime.PodSandbox{Id: "stale"})
	if stale != nil {
		t.Fatal("entries are by message, not by value")
	}
	b, _ := pods.get(kept)
	kept.Id = "changed" // never done to a shared item: here, to see which bytes go out
	buf, _ := c.Marshal(&runtime.ListPodSandboxResponse{Items: []*runtime.PodSandbox{kept}})
	var got runtime.ListPodSandboxResponse
	if err := c.Unmarshal(buf, &got); err != nil || got.Items[0].Id != "a" || len(b) == 0 {
		t.Fatalf("written %v, %v: want the kept encoding, id a", got.Items, err)
	}
	pods.drop(kept)
	buf, _ = c.Marshal(&runtime.ListPodSandboxResponse{Items: []*runtime.PodSandbox{kept}})
	if err := c.Unmarshal(buf, &got); err != nil || got.Items[0].Id != "changed" {
		t.Fatalf("after drop: %v, %v", got.Items, err)
	}
}
