package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

// writeTables writes the tables of docs/performance.md from results:
// `go run ./bench -tables bench/results.json` prints them again from a run
// that is on file.
func writeTables(w io.Writer, res Results) {
	fmt.Fprintf(w, "Run of %s.\n\n", res.When.Format("2006-01-02 15:04 UTC"))
	if len(res.Latency) > 0 {
		fmt.Fprintln(w, "| Python | target | attach | first event | detach |")
		fmt.Fprintln(w, "|---|---|---|---|---|")
		for _, l := range res.Latency {
			first := "–"
			if l.FirstEventMedian > 0 {
				first = fmt.Sprintf("%.1f ms", l.FirstEventMedian)
			}
			fmt.Fprintf(w, "| %s | %s | %.1f ms (%.1f) | %s | %.1f ms (%.1f) |\n",
				l.Python, l.Target, l.AttachMedian, l.AttachP95, first, l.DetachMedian, l.DetachP95)
		}
		fmt.Fprintln(w)
		for _, l := range res.Latency {
			if l.FreshRuns > 0 {
				fmt.Fprintf(w, "First attach to a new process (a busy call loop), %s: attach %.1f ms, first event %.1f ms (%d runs).\n",
					l.Python, l.FreshAttachMedian, l.FreshFirstEventMedian, l.FreshRuns)
			}
		}
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| Python | target | phases (median ms since lptrace's start) |")
		fmt.Fprintln(w, "|---|---|---|")
		for _, l := range res.Latency {
			var ph []string
			for _, p := range l.Phases {
				ph = append(ph, fmt.Sprintf("%s %.1f", p.Name, p.MedianMs))
			}
			fmt.Fprintf(w, "| %s | %s | %s |\n", l.Python, l.Target, strings.Join(ph, ", "))
		}
		fmt.Fprintln(w)
	}
	if len(res.Overhead) > 0 {
		fmt.Fprintln(w, "| Python | workload | untraced (units/s) | traced | filtered out | after detach |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|")
		for _, o := range res.Overhead {
			fmt.Fprintf(w, "| %s | %s | %s | %.2fx | %.2fx | %.2fx |\n", o.Python, o.Workload, thousands(o.Untraced),
				ratio(o.Untraced, o.Traced), ratio(o.Untraced, o.FilteredOut), ratio(o.Untraced, o.Detached))
		}
		fmt.Fprintln(w)
	}
	if len(res.Modes) > 0 {
		head := "| Python | workload | cProfile | floor |"
		line := "|---|---|---|---|"
		for _, m := range tracingModes {
			head += " " + strings.ReplaceAll(m.Name, "*", "\\*") + " |"
			line += "---|"
		}
		fmt.Fprintln(w, head)
		fmt.Fprintln(w, line)
		for _, m := range res.Modes {
			floor := "–"
			if m.Floor > 0 {
				floor = fmt.Sprintf("%.1fx", ratio(m.Untraced, m.Floor))
			}
			row := fmt.Sprintf("| %s | %s | %.1fx | %s |", m.Python, m.Workload, ratio(m.Untraced, m.CProfile), floor)
			for _, mode := range tracingModes {
				if v, ok := m.Traced[mode.Name]; ok {
					row += fmt.Sprintf(" %.1fx |", ratio(m.Untraced, v))
				} else {
					row += " – |"
				}
			}
			fmt.Fprintln(w, row)
		}
		fmt.Fprintln(w)
	}
	if len(res.Throughput) > 0 {
		fmt.Fprintln(w, "| Python | delivered | dropped | lptrace CPU streaming | lptrace CPU idle | lptrace RSS | target + | paced: delivered | paced: dropped | -T paced: delivered | -T paced: dropped | -T paced: lptrace CPU |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|")
		for _, t := range res.Throughput {
			fmt.Fprintf(w, "| %s | %s/s | %s | %.1f%% | %.2f%% | %.1f MiB | %.1f MiB | %s/s | %s | %s/s | %s | %.1f%% |\n",
				t.Python, thousands(t.EventsPerSec), thousands(float64(t.Dropped)), t.LptraceCPUStreamingPct, t.LptraceCPUIdlePct,
				t.LptraceRSSMiB, t.TargetExtraRSSMiB, thousands(t.PacedEventsPerSec), thousands(float64(t.PacedDropped)),
				thousands(t.TimedEventsPerSec), thousands(float64(t.TimedDropped)), t.TimedCPUPct)
		}
		fmt.Fprintln(w)
	}
}

// tablesFrom prints the tables of a results file.
func tablesFrom(path string) {
	data, err := os.ReadFile(path)
	if err != nil {
		fatal("%v", err)
	}
	var res Results
	if err := json.Unmarshal(data, &res); err != nil {
		fatal("%s: %v", path, err)
	}
	writeTables(os.Stdout, res)
}

// thousands writes n rounded, with commas: 1,234,567.
func thousands(n float64) string {
	s := fmt.Sprintf("%.0f", n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
