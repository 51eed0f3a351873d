package task

import (
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/cri-runtime/cri-runtime/api/events/v1"
	"github.com/cri-runtime/cri-runtime/pkg/task/shimapi"
)

// eventMessage is the exchange payload of a shim event.
func eventMessage(ev Event) proto.Message {
	id := ev.ExecID
	if id == "" {
		id = ev.ID
	}
	switch ev.Topic {
	case shimapi.TopicCreate:
		return &eventsv1.TaskCreate{ContainerId: ev.ID, Pid: ev.Pid}
	case shimapi.TopicStart:
		return &eventsv1.TaskStart{ContainerId: ev.ID, Pid: ev.Pid}
	case shimapi.TopicPaused:
		return &eventsv1.TaskPaused{ContainerId: ev.ID}
	case shimapi.TopicResumed:
		return &eventsv1.TaskResumed{ContainerId: ev.ID}
	case shimapi.TopicExecAdded:
		return &eventsv1.TaskExecAdded{ContainerId: ev.ID, ExecId: ev.ExecID}
	case shimapi.TopicExecStarted:
		return &eventsv1.TaskExecStarted{ContainerId: ev.ID, ExecId: ev.ExecID, Pid: ev.Pid}
	case shimapi.TopicOOM:
		return &eventsv1.TaskOOM{ContainerId: ev.ID}
	case shimapi.TopicExit:
		m := &eventsv1.TaskExit{ContainerId: ev.ID, Id: id, Pid: ev.Pid}
		if ev.Exit != nil {
			m.ExitStatus, m.ExitedAt, m.Reason = ev.Exit.Status, timestamppb.New(ev.Exit.At), ev.Exit.Reason
		}
		return m
	case shimapi.TopicDelete:
		m := &eventsv1.TaskDelete{ContainerId: ev.ID, Id: id, Pid: ev.Pid}
		if ev.Exit != nil {
			m.ExitStatus, m.ExitedAt = ev.Exit.Status, timestamppb.New(ev.Exit.At)
		}
		return m
	}
	return nil
}
