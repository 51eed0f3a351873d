package events

import (
	"strconv"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"
)

// adaptor exposes an envelope to filters: topic, namespace and
// event.<path>. The payload is decoded at most once, and only when a filter
// asks for an event field; one adaptor serves all subscribers of a publish.
type adaptor struct {
	env     *Envelope
	payload protoreflect.Message // nil when undecodable
	decoded bool
}

func newAdaptor(env *Envelope, payload proto.Message) *adaptor {
	a := &adaptor{env: env}
	if payload != nil {
		a.payload, a.decoded = payload.ProtoReflect(), true
	}
	return a
}

// Field implements filters.Adaptor.
func (a *adaptor) Field(fieldpath []string) (string, bool) {
	if len(fieldpath) == 0 {
		return "", false
	}
	switch {
	case len(fieldpath) == 1 && fieldpath[0] == "topic":
		return a.env.Topic, true
	case len(fieldpath) == 1 && fieldpath[0] == "namespace":
		return a.env.Namespace, true
	case fieldpath[0] == "event":
		if len(fieldpath) == 1 {
			return "", a.env.Event != nil
		}
		if m := a.message(); m != nil {
			return messageField(m, fieldpath[1:])
		}
	}
	return "", false
}

// message decodes the payload through the global registry, where the
// api/events types register themselves. An unknown type has no fields.
func (a *adaptor) message() protoreflect.Message {
	if !a.decoded {
		a.decoded = true
		if a.env.Event != nil {
			m, err := anypb.UnmarshalNew(a.env.Event, proto.UnmarshalOptions{Resolver: protoregistry.GlobalTypes})
			if err == nil {
				a.payload = m.ProtoReflect()
			}
		}
	}
	return a.payload
}

// messageField looks path up in m by proto field names: scalars are
// formatted as strings, messages are followed, string-keyed maps take the
// key as the next component. A map or list named on its own is present when
// it is not empty, like labels in filters.Map.
func messageField(m protoreflect.Message, path []string) (string, bool) {
	fd := m.Descriptor().Fields().ByName(protoreflect.Name(path[0]))
	if fd == nil {
		return "", false
	}
	rest := path[1:]
	switch {
	case fd.IsMap():
		mp := m.Get(fd).Map()
		if len(rest) == 0 {
			return "", mp.Len() > 0
		}
		if fd.MapKey().Kind() != protoreflect.StringKind {
			return "", false
		}
		v := mp.Get(protoreflect.ValueOfString(rest[0]).MapKey())
		if !v.IsValid() {
			return "", false
		}
		return valueField(fd.MapValue(), v, rest[1:])
	case fd.IsList():
		return "", len(rest) == 0 && m.Get(fd).List().Len() > 0
	case fd.HasPresence() && !m.Has(fd):
		// Unset message, oneof member or optional scalar. Plain proto3
		// scalars have no presence: their zero value is a value, so
		// event.exit_status==0 matches.
		return "", false
	}
	return valueField(fd, m.Get(fd), rest)
}

func valueField(fd protoreflect.FieldDescriptor, v protoreflect.Value, rest []string) (string, bool) {
	if k := fd.Kind(); k == protoreflect.MessageKind || k == protoreflect.GroupKind {
		if len(rest) == 0 {
			return "", true
		}
		return messageField(v.Message(), rest)
	}
	if len(rest) > 0 {
		return "", false
	}
	return scalarString(fd, v), true
}

func scalarString(fd protoreflect.FieldDescriptor, v protoreflect.Value) string {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return v.String()
	case protoreflect.BytesKind:
		return string(v.Bytes())
	case protoreflect.BoolKind:
		return strconv.FormatBool(v.Bool())
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return string(ev.Name())
		}
		return strconv.FormatInt(int64(v.Enum()), 10)
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return strconv.FormatInt(v.Int(), 10)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return strconv.FormatUint(v.Uint(), 10)
	case protoreflect.FloatKind:
		return strconv.FormatFloat(v.Float(), 'g', -1, 32)
	case protoreflect.DoubleKind:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64)
	}
	return v.String()
}
