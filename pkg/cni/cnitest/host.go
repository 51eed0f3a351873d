package cnitest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// What the Envs of all test processes of the machine share is guarded by
// the lock file "shared.lock": each live Env holds it shared. The first Env
// (the one that gets it exclusive at start) records the host state the
// plugins change; the last (the one that gets it exclusive at its end)
// restores it.

// hostState is what the first Env found.
type hostState struct {
	IPForward        string `json:"ipForward"`        // net.ipv4.ip_forward
	HadPortmapChains bool   `json:"hadPortmapChains"` // CNI-HOSTPORT-DNAT existed
}

const ipForward = "/proc/sys/net/ipv4/ip_forward"

// portmapChains are the chains the portmap plugin shares between networks.
var portmapChains = []string{"CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-SETMARK", "CNI-HOSTPORT-MASQ"}

var shared struct {
	sync.Mutex
	f     *os.File // the lock file, held shared while users > 0
	users int      // Envs of this process
}

func lockDir(t testing.TB) string {
	dir := filepath.Join(os.TempDir(), "cri-rt-cnitest")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

// enterShared takes the shared lock for an Env, recording the host state
// first if no Env of any process is alive.
func enterShared(t testing.TB) {
	t.Helper()
	shared.Lock()
	defer shared.Unlock()
	shared.users++
	if shared.users > 1 {
		return
	}
	dir := lockDir(t)
	f, err := os.OpenFile(filepath.Join(dir, "shared.lock"), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
		if err := saveHostState(dir); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH); err != nil {
		t.Fatal(err)
	}
	shared.f = f
}

// leaveShared releases an Env's hold; the last Env of the machine
// restores the host state.
func leaveShared(t testing.TB) {
	shared.Lock()
	defer shared.Unlock()
	shared.users--
	if shared.users > 0 {
		return
	}
	f := shared.f
	shared.f = nil
	defer f.Close()
	if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
		return // another process still has an Env
	}
	if err := restoreHostState(lockDir(t)); err != nil {
		t.Errorf("cnitest: %v", err)
	}
}

func saveHostState(dir string) error {
	fwd, err := os.ReadFile(ipForward)
	if err != nil {
		return err
	}
	save, err := iptablesSave()
	if err != nil {
		return err
	}
	st := hostState{IPForward: strings.TrimSpace(string(fwd)), HadPortmapChains: strings.Contains(save, ":CNI-HOSTPORT-DNAT ")}
	data, _ := json.Marshal(st)
	return os.WriteFile(filepath.Join(dir, "host-state.json"), data, 0o600)
}

func restoreHostState(dir string) error {
	path := filepath.Join(dir, "host-state.json")
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var st hostState
	if err := json.Unmarshal(data, &st); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if st.IPForward != "" {
		if err := os.WriteFile(ipForward, []byte(st.IPForward), 0o644); err != nil {
			return err
		}
	}
	if !st.HadPortmapChains {
		if err := removePortmapChains(); err != nil {
			return err
		}
	}
	return os.Remove(path)
}

// removePortmapChains removes portmap's shared chains and the jumps to
// them, if no rule of any network is left in them.
func removePortmapChains() error {
	save, err := iptablesSave()
	if err != nil {
		return err
	}
	if strings.Contains(save, "-A CNI-HOSTPORT-DNAT ") || !strings.Contains(save, ":CNI-HOSTPORT-DNAT ") {
		return nil
	}
	var script strings.Builder
	script.WriteString("*nat\n")
	for _, line := range strings.Split(save, "\n") {
		for _, c := range portmapChains {
			if strings.HasPrefix(line, "-A ") && strings.HasSuffix(line, "-j "+c) && !strings.HasPrefix(line, "-A CNI-") {
				script.WriteString("-D" + strings.TrimPrefix(line, "-A") + "\n")
			}
		}
	}
	for _, c := range portmapChains {
		if strings.Contains(save, ":"+c+" ") {
			fmt.Fprintf(&script, "-F %s\n-X %s\n", c, c)
		}
	}
	script.WriteString("COMMIT\n")
	return iptablesRestore(script.String())
}

// jumpTarget finds the chain a rule jumps to.
var jumpTarget = regexp.MustCompile(`-j (CNI-[A-Z]+-[0-9a-f]+)$`)

// perPod matches the names of portmap's per-pod chains.
var perPod = regexp.MustCompile(`^CNI-[A-Z]+-[0-9a-f]+$`)

// purgePortmap removes the rules portmap made for pods of the network
// name (its comment names the network) and their per-pod chains: what a
// test that failed half-way left.
func purgePortmap(name string) error {
	save, err := iptablesSave()
	if err != nil {
		return err
	}
	var dels, chains []string
	for _, line := range strings.Split(save, "\n") {
		if !strings.HasPrefix(line, "-A ") || !strings.Contains(line, `name: \"`+name+`\"`) {
			continue
		}
		if m := jumpTarget.FindStringSubmatch(line); m != nil && !slices.Contains(chains, m[1]) {
			chains = append(chains, m[1])
		}
		if chain := strings.Fields(line)[1]; !perPod.MatchString(chain) {
			dels = append(dels, "-D"+strings.TrimPrefix(line, "-A")) // the per-pod chains are flushed
		}
	}
	if len(dels) == 0 && len(chains) == 0 {
		return nil
	}
	var script strings.Builder
	script.WriteString("*nat\n")
	for _, d := range dels {
		script.WriteString(d + "\n")
	}
	for _, c := range chains {
		fmt.Fprintf(&script, "-F %s\n-X %s\n", c, c)
	}
	script.WriteString("COMMIT\n")
	return iptablesRestore(script.String())
}

func iptablesSave() (string, error) {
	out, err := exec.Command("iptables-save", "-t", "nat").Output()
	if err != nil {
		return "", fmt.Errorf("iptables-save: %w", err)
	}
	return string(out), nil
}

func iptablesRestore(script string) error {
	cmd := exec.Command("iptables-restore", "--noflush", "--wait")
	cmd.Stdin = bytes.NewReader([]byte(script))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("iptables-restore: %v: %s\n%s", err, out, script)
	}
	return nil
}
