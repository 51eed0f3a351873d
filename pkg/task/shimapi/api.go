// Package shimapi is the protocol between the daemon (pkg/task) and a shim
// (pkg/task/shim): the request and response messages, the event record,
// where a shim's socket and directory are, and the wire: length-prefixed
// JSON frames over a unix socket, with a multiplexing Client and a Server.
//
// It is shared by both ends so that they cannot drift, and it links only
// the standard library and the leaves (errdefs, mount): the shim must stay
// small (see pkg/task/doc.go for why JSON frames and not gRPC or ttrpc).
package shimapi

import (
	"encoding/json"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/mount"
)

// Version is the protocol version a shim reports in Info. A daemon that
// finds a shim of another version reports it and leaves it alone.
const Version = 1

// Method names, one per request type.
const (
	MethodInfo       = "Info"
	MethodCreate     = "Create"
	MethodStart      = "Start"
	MethodExec       = "Exec"
	MethodKill       = "Kill"
	MethodPause      = "Pause"
	MethodResume     = "Resume"
	MethodPids       = "Pids"
	MethodUpdate     = "Update"
	MethodCloseStdin = "CloseStdin"
	MethodResize     = "Resize"
	MethodWait       = "Wait"
	MethodDelete     = "Delete"
	MethodCheckpoint = "Checkpoint"
	MethodState      = "State"
	MethodEvents     = "Events"
	MethodReopenLog  = "ReopenLog"
	MethodShutdown   = "Shutdown"
)

// Status is the state of a process as the shim knows it.
type Status string

// The states of a process. A deleted process is gone from the shim.
const (
	StatusCreated Status = "created"
	StatusRunning Status = "running"
	StatusPaused  Status = "paused"
	StatusStopped Status = "stopped"
	StatusDeleted Status = "deleted"
)

// Reasons an exit can carry.
const (
	// ReasonOOMKilled: the memory cgroup of the container killed a process
	// for lack of memory while it ran (its oom_kill counter went up).
	ReasonOOMKilled = "OOMKilled"
	// ReasonShimGone: the shim died; the process was killed by the daemon
	// when it cleaned up, and its real status is unknown (Status 255).
	ReasonShimGone = "ShimGone"
)

// Exit is how a process ended.
type Exit struct {
	// Status is the exit code, or 128 + the signal number when a signal
	// killed the process (as a shell reports it).
	Status uint32    `json:"status"`
	At     time.Time `json:"at"`
	Reason string    `json:"reason,omitempty"`
}

// IO says where the standard streams of a process go.
type IO struct {
	// Terminal gives the process a pseudo-terminal; its output is one
	// stream, reported as stdout.
	Terminal bool `json:"terminal,omitempty"`
	// Stdin, Stdout and Stderr are FIFOs the daemon made and holds open:
	// the shim copies Stdin into the process and its output into
	// Stdout and Stderr. "" for none.
	Stdin  string `json:"stdin,omitempty"`
	Stdout string `json:"stdout,omitempty"`
	Stderr string `json:"stderr,omitempty"`
	// LogPath is a file the shim appends stdout and stderr to in the CRI
	// format (<RFC3339Nano> stdout|stderr P|F <line>). "" for none.
	LogPath string `json:"logPath,omitempty"`
	// LogLineSize is the longest line content, in bytes, written as one
	// log line; longer lines are split into P parts. 0 means 16 KiB.
	LogLineSize int `json:"logLineSize,omitempty"`
	// OutputBuffer is how many bytes of output, per sink, the shim holds
	// for a slow log disk or a slow FIFO reader before it drops output
	// (with a counted marker) rather than block the process. 0 means
	// 256 KiB.
	OutputBuffer int `json:"outputBuffer,omitempty"`
}

// InfoResponse describes a running shim.
type InfoResponse struct {
	Version   int    `json:"version"`
	Pid       int    `json:"pid"`
	Namespace string `json:"namespace"`
	Group     string `json:"group"`
}

// CreateRequest creates a container: its bundle under the shim's
// directory, its rootfs mounts, and the runtime's `create`.
type CreateRequest struct {
	ID string `json:"id"`
	// Runtime is the OCI runtime binary (a name looked up in PATH, or a
	// path): runc, crun.
	Runtime string `json:"runtime"`
	// Spec is the runtime-spec config.json. When Rootfs is given, its
	// root.path is replaced by the bundle's rootfs directory.
	Spec   json.RawMessage `json:"spec"`
	Rootfs []mount.Mount   `json:"rootfs,omitempty"`
	IO     IO              `json:"io"`
	// Checkpoint is a CRIU image directory: Start restores the container
	// from it instead of starting the spec's process.
	Checkpoint string `json:"checkpoint,omitempty"`
}

// CreateResponse reports the pid of the created container's init process
// (0 when it will be restored from a checkpoint) and its bundle.
type CreateResponse struct {
	Pid    uint32 `json:"pid"`
	Bundle string `json:"bundle"`
	// Seq is the number of the container's create event: the delete
	// events of an earlier container of the same ID have lower numbers.
	Seq uint64 `json:"seq,omitempty"`
}

// ProcessRequest names a process: the init process of container ID when
// ExecID is "", else the exec process ExecID in it.
type ProcessRequest struct {
	ID     string `json:"id"`
	ExecID string `json:"execID,omitempty"`
}

// PidResponse reports the pid of a started process.
type PidResponse struct {
	Pid uint32 `json:"pid"`
}

// ExecRequest adds a process to a running container (it runs at Start).
type ExecRequest struct {
	ID     string `json:"id"`
	ExecID string `json:"execID"`
	// Spec is a runtime-spec Process (JSON).
	Spec json.RawMessage `json:"spec"`
	IO   IO              `json:"io"`
}

// KillRequest signals a process. With All, every process of the
// container; with Pid, that one process, which must be in the container.
type KillRequest struct {
	ID     string `json:"id"`
	ExecID string `json:"execID,omitempty"`
	Signal uint32 `json:"signal"`
	All    bool   `json:"all,omitempty"`
	Pid    uint32 `json:"pid,omitempty"`
}

// ResizeRequest sets the window size of a process's terminal.
type ResizeRequest struct {
	ID     string `json:"id"`
	ExecID string `json:"execID,omitempty"`
	Width  uint16 `json:"width"`
	Height uint16 `json:"height"`
}

// UpdateRequest changes the resources of a container.
type UpdateRequest struct {
	ID string `json:"id"`
	// Resources is a runtime-spec LinuxResources (JSON).
	Resources json.RawMessage `json:"resources"`
}

// ProcessInfo is one process of a container.
type ProcessInfo struct {
	Pid uint32 `json:"pid"`
	// ExecID names the exec process this pid is, "" for init or a process
	// the shim did not start.
	ExecID string `json:"execID,omitempty"`
}

// PidsResponse lists the processes of a container.
type PidsResponse struct {
	Processes []ProcessInfo `json:"processes"`
}

// CheckpointRequest checkpoints a running container with CRIU.
type CheckpointRequest struct {
	ID        string `json:"id"`
	ImagePath string `json:"imagePath"`
	WorkPath  string `json:"workPath,omitempty"`
	// Exit stops the container after the checkpoint (else it keeps running).
	Exit bool `json:"exit,omitempty"`
}

// ProcessState is the state of one process.
type ProcessState struct {
	ID       string `json:"id"`
	ExecID   string `json:"execID,omitempty"`
	Pid      uint32 `json:"pid"`
	Status   Status `json:"status"`
	Exit     *Exit  `json:"exit,omitempty"`
	Terminal bool   `json:"terminal,omitempty"`
	Bundle   string `json:"bundle,omitempty"`
}

// StateRequest asks for the state of the processes of container ID, or of
// every process of the shim when ID is "".
type StateRequest struct {
	ID string `json:"id,omitempty"`
}

// StateResponse is a snapshot of the shim's processes. Seq is the sequence
// number of the last event when the snapshot was taken (read before it):
// every change after the snapshot is in an event after Seq.
type StateResponse struct {
	Processes []ProcessState `json:"processes"`
	Seq       uint64         `json:"seq"`
}

// ExitResponse reports the exit of a process (Wait, Delete). Remaining is
// the number of containers the shim still holds after a Delete.
type ExitResponse struct {
	Exit      Exit `json:"exit"`
	Remaining int  `json:"remaining"`
}

// EventsRequest asks for the events after sequence number After. The
// call blocks until there is one, or the caller gives up.
type EventsRequest struct {
	After uint64 `json:"after"`
}

// EventsResponse carries events in order. Lost says that events after
// After were dropped from the shim's bounded log before they were asked
// for: the caller resynchronises from State, which keeps the last status
// of every process until it is deleted.
type EventsResponse struct {
	Events []Event `json:"events"`
	Lost   bool    `json:"lost,omitempty"`
}

// Empty is the request or response of calls that carry nothing.
type Empty struct{}

// Event topics, as published on the daemon's exchange.
const (
	TopicCreate      = "/tasks/create"
	TopicStart       = "/tasks/start"
	TopicExit        = "/tasks/exit"
	TopicOOM         = "/tasks/oom"
	TopicPaused      = "/tasks/paused"
	TopicResumed     = "/tasks/resumed"
	TopicExecAdded   = "/tasks/exec-added"
	TopicExecStarted = "/tasks/exec-started"
	TopicDelete      = "/tasks/delete"
)

// Event is one change of a process, numbered by the shim in the order it
// happened.
type Event struct {
	Seq    uint64    `json:"seq"`
	Topic  string    `json:"topic"`
	ID     string    `json:"id"`
	ExecID string    `json:"execID,omitempty"`
	Pid    uint32    `json:"pid,omitempty"`
	At     time.Time `json:"at"`
	// Exit is set for exit and delete events.
	Exit *Exit `json:"exit,omitempty"`
}
