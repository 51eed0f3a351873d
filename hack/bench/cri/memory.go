package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

var (
	memPods = flag.Int("mem-pods", 50, "pods running for the memory figures (0: none taken)")
	// A Go daemon returns the garbage of the warm-up's pull only after a
	// GC and its scavenger's pace: 2 s after it, the idle figure was at
	// times above the loaded one.
	memSettle = flag.Duration("mem-settle", 10*time.Second, "pause before each memory figure")
	procsFor  runtimeFlags
	daemons   runtimeFlags
)

func init() {
	flag.Var(&procsFor, "procs", "NAME=FILE: the cgroup.procs of runtime NAME's cgroup, where its shims are; repeatable")
	flag.Var(&daemons, "daemon", "NAME=PID: the daemon's process; repeatable")
}

// memory is what a runtime's processes hold, in bytes: the daemon's
// resident set and proportional set, and the proportional set of all its
// shims (their shared pages counted once over them all).
type memory struct {
	daemonRSS, daemonPSS, shimsPSS int64
	shims                          int
}

// memFigures are one runtime's memory figures idle and with -mem-pods pods.
type memFigures struct {
	idle, loaded memory
	pods         int
}

// measureMemory reads rt's memory now: the daemon by its PID, the shims
// as the processes of its cgroup whose executable has "shim" in its name.
func (r *runtimeUnderTest) measureMemory() (memory, error) {
	var m memory
	rss, pss, err := smapsRollup(r.daemonPID)
	if err != nil {
		return m, fmt.Errorf("daemon %d: %w", r.daemonPID, err)
	}
	m.daemonRSS, m.daemonPSS = rss, pss
	b, err := os.ReadFile(r.procsFile)
	if err != nil {
		return m, err
	}
	for _, f := range strings.Fields(string(b)) {
		pid, err := strconv.Atoi(f)
		if err != nil || pid == r.daemonPID {
			continue
		}
		// Not comm: it is cut at 15 bytes ("cri-runtime-shi").
		exe, err := os.Readlink(filepath.Join("/proc", f, "exe"))
		if err != nil || !strings.Contains(filepath.Base(exe), "shim") {
			continue // gone, or runc or a CNI plugin passing through
		}
		if _, pss, err := smapsRollup(pid); err == nil {
			m.shimsPSS += pss
			m.shims++
		}
	}
	return m, nil
}

// smapsRollup returns the Rss and Pss of pid, in bytes.
func smapsRollup(pid int) (rss, pss int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "Rss" && k != "Pss") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("smaps_rollup %s: %w", k, err)
		}
		if k == "Rss" {
			rss = kb << 10
		} else {
			pss = kb << 10
		}
	}
	return rss, pss, sc.Err()
}

// memoryPhase takes each runtime's memory idle (no pod: after the
// warm-up, before the rounds, whose garbage a Go daemon keeps for a while)
// and with -mem-pods pods of one container each running, then removes
// them. The runtimes go one after the other: memory does not depend on
// the other's load.
func memoryPhase(ctx context.Context, rts []*runtimeUnderTest) (map[string]memFigures, error) {
	out := map[string]memFigures{}
	for _, rt := range rts {
		if rt.procsFile == "" || rt.daemonPID == 0 || *memPods == 0 {
			continue
		}
		time.Sleep(*memSettle)
		idle, err := rt.measureMemory()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", rt.name, err)
		}
		pods, err := rt.startMany(ctx, "mem", *memPods)
		if err == nil {
			time.Sleep(*memSettle)
			var loaded memory
			if loaded, err = rt.measureMemory(); err == nil {
				out[rt.name] = memFigures{idle: idle, loaded: loaded, pods: len(pods)}
			}
		}
		if serr := rt.stopMany(ctx, pods); err == nil {
			err = serr
		}
		if err != nil {
			return nil, fmt.Errorf("%s: memory: %w", rt.name, err)
		}
	}
	return out, nil
}

// perPod is the memory a pod costs its runtime: the daemon's growth
// (PSS) and the shims' PSS, over the pods.
func (f memFigures) perPod() int64 {
	return (f.loaded.daemonPSS - f.idle.daemonPSS + f.loaded.shimsPSS - f.idle.shimsPSS) / int64(f.pods)
}

// memoryTable writes the memory figures of each runtime, in MiB, with
// the ratios to the first runtime's.
func memoryTable(w io.Writer, names []string, figs map[string]memFigures) {
	if len(figs) == 0 {
		return
	}
	mib := func(b int64) string { return fmt.Sprintf("%.1f", float64(b)/(1<<20)) }
	ref, haveRef := figs[names[0]]
	fmt.Fprintf(w, "\nMemory in MiB (PSS: shared pages split among the processes that map them)\n\n")
	header := []string{"figure"}
	for _, n := range names {
		if _, ok := figs[n]; ok {
			header = append(header, n)
			if n != names[0] && haveRef {
				header = append(header, "ratio")
			}
		}
	}
	row(w, header)
	row(w, align(len(header)))
	rows := []struct {
		label string
		get   func(memFigures) int64
	}{
		{"daemon RSS, idle", func(f memFigures) int64 { return f.idle.daemonRSS }},
		{"daemon PSS, idle", func(f memFigures) int64 { return f.idle.daemonPSS }},
		{fmt.Sprintf("daemon RSS, %d pods", *memPods), func(f memFigures) int64 { return f.loaded.daemonRSS }},
		{fmt.Sprintf("daemon PSS, %d pods", *memPods), func(f memFigures) int64 { return f.loaded.daemonPSS }},
		{fmt.Sprintf("shims PSS, %d pods", *memPods), func(f memFigures) int64 { return f.loaded.shimsPSS }},
		{"per pod (daemon growth + shims)", memFigures.perPod},
	}
	for _, rw := range rows {
		cells := []string{rw.label}
		for _, n := range names {
			f, ok := figs[n]
			if !ok {
				continue
			}
			cells = append(cells, mib(rw.get(f)))
			if n != names[0] && haveRef {
				cells = append(cells, fmt.Sprintf("%.2f", float64(rw.get(f))/float64(max(rw.get(ref), 1))))
			}
		}
		row(w, cells)
	}
	for _, n := range names {
		if f, ok := figs[n]; ok {
			fmt.Fprintf(w, "\n%s: %d shim processes with %d pods.", n, f.loaded.shims, f.pods)
		}
	}
	fmt.Fprintln(w)
}
