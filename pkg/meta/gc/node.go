package gc

import "fmt"

// resourceNames are the stable names of the resource types, used as the
// "type" label of metrics and in error messages.
var resourceNames = [...]string{
	ResourceUnknown:   "unknown",
	ResourceContent:   "content",
	ResourceSnapshot:  "snapshot",
	ResourceContainer: "container",
	ResourceSandbox:   "sandbox",
	ResourceImage:     "image",
	ResourceLease:     "lease",
	ResourceIngest:    "ingest",
}

// String returns the lower-case name of t, or "type(N)" for a value this
// version does not know (read from a newer database, for instance).
func (t ResourceType) String() string {
	if int(t) < len(resourceNames) {
		return resourceNames[t]
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// String returns "<type> <namespace>/<key>", the form used in errors.
func (n Node) String() string {
	return fmt.Sprintf("%s %s/%s", n.Type, n.Namespace, n.Key)
}
