package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"

	// The payload types, so that events print as JSON.
	_ "github.com/cri-runtime/cri-runtime/api/events/v1"
	"github.com/cri-runtime/cri-runtime/pkg/events"
)

func newEventsCommand(g *globals) *cobra.Command {
	return markStreaming(&cobra.Command{
		Use:   "events [FILTER...]",
		Short: "Print events matching any of the filters, one per line, until interrupted",
		Long: "Print events, one per line: timestamp, namespace, topic and payload as JSON.\n" +
			"Events of every namespace are printed unless a filter (namespace==NAME) restricts them.\n" +
			"With --timeout, it prints them for that long and exits 0.",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, c, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			envs, errs := c.Events().Subscribe(ctx, args...)
			for env := range envs {
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s %s %s\n", env.Timestamp.Format(time.RFC3339Nano), env.Namespace, env.Topic, payloadJSON(env))
			}
			return <-errs
		},
	})
}

// payloadJSON renders the event's payload as one line of JSON; a payload
// of an unknown type prints as its type URL.
func payloadJSON(env *events.Envelope) string {
	if env.Event == nil {
		return "{}"
	}
	msg, err := env.Event.UnmarshalNew()
	if err != nil {
		return fmt.Sprintf("{%q:%q}", "@type", env.Event.GetTypeUrl())
	}
	data, err := protojson.Marshal(msg)
	if err != nil {
		return fmt.Sprintf("{%q:%q}", "@type", env.Event.GetTypeUrl())
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, data); err != nil {
		return string(data)
	}
	return buf.String()
}
