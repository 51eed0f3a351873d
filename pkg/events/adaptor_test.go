package events

import (
	"testing"
	"time"

	eventsv1 "github.com/cri-runtime/cri-runtime/api/events/v1"
	"github.com/cri-runtime/cri-runtime/pkg/filters"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/sourcecontextpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/typepb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func mustAny(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestAdaptorFields checks the field lookup both on a payload given as a
// message (Publish) and on one decoded from the Any (Forward).
func TestAdaptorFields(t *testing.T) {
	exit := &eventsv1.TaskExit{
		ContainerId: "c1", Id: "p1", Pid: 42, ExitStatus: 0,
		ExitedAt: timestamppb.New(time.Unix(1700000000, 5)),
	}
	image := &eventsv1.ImageCreate{Name: "docker.io/library/busybox:1", Labels: map[string]string{"a.b/c": "v", "k": ""}}
	content := &eventsv1.ContentCreate{Digest: "sha256:abc", Size: -7}
	typ := &typepb.Type{
		Name:          "T",
		Oneofs:        []string{"o"},
		Syntax:        typepb.Syntax_SYNTAX_PROTO3,
		SourceContext: &sourcecontextpb.SourceContext{FileName: "f.proto"},
	}
	for _, tc := range []struct {
		name    string
		msg     proto.Message
		path    []string
		value   string
		present bool
	}{
		{"string", exit, []string{"event", "container_id"}, "c1", true},
		{"uint32", exit, []string{"event", "pid"}, "42", true},
		{"zero scalar is a value", exit, []string{"event", "exit_status"}, "0", true},
		{"nested message", exit, []string{"event", "exited_at", "seconds"}, "1700000000", true},
		{"nested int32", exit, []string{"event", "exited_at", "nanos"}, "5", true},
		{"message on its own", exit, []string{"event", "exited_at"}, "", true},
		{"unset message", &eventsv1.TaskExit{}, []string{"event", "exited_at"}, "", false},
		{"under unset message", &eventsv1.TaskExit{}, []string{"event", "exited_at", "seconds"}, "", false},
		{"past a scalar", exit, []string{"event", "pid", "x"}, "", false},
		{"json name is not a proto name", exit, []string{"event", "containerId"}, "", false},
		{"unknown field", exit, []string{"event", "nope"}, "", false},
		{"int64", content, []string{"event", "size"}, "-7", true},
		{"map key", image, []string{"event", "labels", "a.b/c"}, "v", true},
		{"map empty value", image, []string{"event", "labels", "k"}, "", true},
		{"map missing key", image, []string{"event", "labels", "x"}, "", false},
		{"map on its own", image, []string{"event", "labels"}, "", true},
		{"empty map", &eventsv1.ImageCreate{}, []string{"event", "labels"}, "", false},
		{"enum by name", typ, []string{"event", "syntax"}, "SYNTAX_PROTO3", true},
		{"list", typ, []string{"event", "oneofs"}, "", true},
		{"empty list", typ, []string{"event", "fields"}, "", false},
		{"into a list", typ, []string{"event", "oneofs", "0"}, "", false},
		{"well-known nested", typ, []string{"event", "source_context", "file_name"}, "f.proto", true},
		{"bool", wrapperspb.Bool(true), []string{"event", "value"}, "true", true},
		{"bytes", wrapperspb.Bytes([]byte("hi")), []string{"event", "value"}, "hi", true},
		{"float", wrapperspb.Float(0.1), []string{"event", "value"}, "0.1", true},
		{"double", wrapperspb.Double(1e21), []string{"event", "value"}, "1e+21", true},
		{"event", exit, []string{"event"}, "", true},
		{"topic", exit, []string{"topic"}, "/tasks/exit", true},
		{"namespace", exit, []string{"namespace"}, "k8s.io", true},
		{"topic has no parts", exit, []string{"topic", "x"}, "", false},
		{"unknown top level", exit, []string{"name"}, "", false},
		{"empty path", exit, nil, "", false},
	} {
		env := &Envelope{Timestamp: time.Now(), Namespace: "k8s.io", Topic: "/tasks/exit", Event: mustAny(t, tc.msg)}
		for _, a := range []*adaptor{newAdaptor(env, tc.msg), newAdaptor(env, nil)} {
			v, ok := a.Field(tc.path)
			if v != tc.value || ok != tc.present {
				t.Errorf("%s (decoded=%v): Field(%q) = %q, %v; want %q, %v", tc.name, a.decoded, tc.path, v, ok, tc.value, tc.present)
			}
		}
	}
}

func TestAdaptorUnknownType(t *testing.T) {
	env := &Envelope{
		Timestamp: time.Now(), Namespace: "ns", Topic: "/x",
		Event: &anypb.Any{TypeUrl: "type.googleapis.com/not.registered.Type", Value: []byte{0x0a, 0x01, 'a'}},
	}
	a := newAdaptor(env, nil)
	if _, ok := a.Field([]string{"event", "name"}); ok {
		t.Error("unknown payload type has event fields")
	}
	if _, ok := a.Field([]string{"event"}); !ok {
		t.Error("unknown payload type: event is not present")
	}
	f, err := filters.Parse("topic==/x,event.name!=a")
	if err != nil {
		t.Fatal(err)
	}
	if !f.Match(a) {
		t.Error("filter on topic and a missing event field does not match")
	}
}
