package labels

import (
	"maps"
	"testing"
)

func TestApplyPath(t *testing.T) {
	cur := map[string]string{"a": "1", "b": "2"}
	src := map[string]string{"b": "20", "c": "30"}
	cases := []struct {
		path string
		ok   bool
		want map[string]string
	}{
		{"labels", true, map[string]string{"b": "20", "c": "30"}},
		{"labels.b", true, map[string]string{"a": "1", "b": "20"}},
		{"labels.c", true, map[string]string{"a": "1", "b": "2", "c": "30"}},
		{"labels.a", true, map[string]string{"b": "2"}}, // not in src: deleted
		{"labels.", false, cur},
		{"labelsx", false, cur},
		{"image", false, cur},
	}
	for _, c := range cases {
		dst := maps.Clone(cur)
		if ok := ApplyPath(&dst, src, "labels", c.path); ok != c.ok || !maps.Equal(dst, c.want) {
			t.Errorf("%q: %v %v, want %v %v", c.path, ok, dst, c.ok, c.want)
		}
	}
	var empty map[string][]byte
	if !ApplyPath(&empty, map[string][]byte{"x": []byte("1")}, "extensions", "extensions.x") || string(empty["x"]) != "1" {
		t.Fatalf("a nil map is made: %v", empty)
	}
}
