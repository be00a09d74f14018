package bench

import (
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
)

// WriteTable prints the result for people: the run, then one row for the
// total and one per encoding.
func (r *Result) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "%s against %s (%s): %d conns", r.Scenario, r.Target, r.Proto, r.Conns)
	switch r.Scenario {
	case "broadcast":
		fmt.Fprintf(w, ", %d subscribers, %d senders", r.Subs, r.Senders)
	case "room":
		fmt.Fprintf(w, ", %d rooms of %d, %d senders each", r.Rooms, r.Subs, r.Senders)
	case "pipeline":
		fmt.Fprintf(w, ", %d in flight each", r.Inflight)
	}
	loop := "closed loop"
	switch {
	case r.Scenario == "idle":
		loop = "ramp-up"
	case r.Rate > 0:
		loop = fmt.Sprintf("open loop at %g ops/s", r.Rate)
	}
	fmt.Fprintf(w, ", %s, %.1fs\n", loop, r.DurationS)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tops\tops/s\tp50 us\tp90 us\tp99 us\tp99.9 us\tmax us\terrors\t")
	row := func(name string, s *Stats) {
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%d\t%d\t%d\t%d\t%d\t%d\t\n", name, s.Ops, s.OpsPerS, s.P50, s.P90, s.P99, s.P999, s.Max, s.Errors)
	}
	row("total", &r.Stats)
	names := make([]string, 0, len(r.ByProto))
	for name := range r.ByProto {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		row(name, r.ByProto[name])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if r.Scenario == "broadcast" || r.Scenario == "room" {
		fmt.Fprintf(w, "sent %d, deliveries expected %d, lost %d\n", r.Sent, r.Expected, r.Lost)
	}
	if r.FirstError != "" {
		fmt.Fprintf(w, "first error: %s\n", r.FirstError)
	}
	return nil
}
