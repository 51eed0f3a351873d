package shim

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/task/shimapi"
)

// TestCreateSpecPassesThrough checks that the shim's partial reading of a
// spec keeps every field of it in config.json, with only root.path
// changed, and still refuses a spec it cannot run.
func TestCreateSpecPassesThrough(t *testing.T) {
	in := `{"ociVersion":"1.2.0","process":{"terminal":false,"user":{"uid":1000,"gid":100},"args":["sh"],` +
		`"capabilities":{"bounding":["CAP_KILL"]}},"root":{"path":"/somewhere","readonly":true},` +
		`"annotations":{"a":"b"},"linux":{"seccomp":{"defaultAction":"SCMP_ACT_ERRNO"},"future":{"x":1}}}`
	req := &shimapi.CreateRequest{ID: "c1", Runtime: "runc", Spec: json.RawMessage(in)}
	spec, err := validateCreate(req)
	if err != nil {
		t.Fatal(err)
	}
	if uid, gid := spec.user(); uid != 1000 || gid != 100 {
		t.Errorf("user %d:%d, want 1000:100", uid, gid)
	}
	out, err := spec.withRoot(shimapi.RootfsDir)
	if err != nil {
		t.Fatal(err)
	}
	var got, want map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(in), &want); err != nil {
		t.Fatal(err)
	}
	want["root"].(map[string]any)["path"] = shimapi.RootfsDir
	if !reflect.DeepEqual(got, want) {
		t.Errorf("config.json\n got %s\nwant root.path %q and the rest of %s", out, shimapi.RootfsDir, in)
	}

	for name, bad := range map[string]string{
		"not JSON":   `{"process":`,
		"no process": `{"root":{"path":"r"}}`,
		"no root":    `{"process":{"args":["sh"]}}`,
		"no args":    `{"process":{},"root":{"path":"r"}}`,
		"bad type":   `{"process":{"args":"sh"},"root":{"path":"r"}}`,
		"terminal":   `{"process":{"terminal":true,"args":["sh"]},"root":{"path":"r"}}`,
	} {
		_, err := validateCreate(&shimapi.CreateRequest{ID: "c1", Runtime: "runc", Spec: json.RawMessage(bad)})
		if !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}
}
