package spec

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

func u64(v uint64) *uint64 { return &v }
func i64p(v int64) *int64  { return &v }

func TestLinuxResources(t *testing.T) {
	full := Host{SwapAccounting: true, Hugetlb: true}
	for _, tc := range []struct {
		name string
		r    *runtime.LinuxContainerResources
		host Host
		want specs.LinuxResources
		err  error
	}{
		{name: "none", r: nil},
		{name: "cpu", r: &runtime.LinuxContainerResources{CpuPeriod: 100000, CpuQuota: 50000, CpuShares: 512, CpusetCpus: "0-1,3", CpusetMems: "0"},
			want: specs.LinuxResources{CPU: &specs.LinuxCPU{Period: u64(100000), Quota: i64p(50000), Shares: u64(512), Cpus: "0-1,3", Mems: "0"}}},
		{name: "memory limits swap to the same", r: &runtime.LinuxContainerResources{MemoryLimitInBytes: 1 << 20}, host: full,
			want: specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64p(1 << 20), Swap: i64p(1 << 20)}}},
		{name: "explicit swap", r: &runtime.LinuxContainerResources{MemoryLimitInBytes: 1 << 20, MemorySwapLimitInBytes: 2 << 20}, host: full,
			want: specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64p(1 << 20), Swap: i64p(2 << 20)}}},
		{name: "no swap accounting no swap", r: &runtime.LinuxContainerResources{MemoryLimitInBytes: 1 << 20, MemorySwapLimitInBytes: 2 << 20},
			want: specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64p(1 << 20)}}},
		{name: "unlimited quota", r: &runtime.LinuxContainerResources{CpuQuota: -1},
			want: specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64p(-1)}}},
		{name: "hugepages", r: &runtime.LinuxContainerResources{HugepageLimits: []*runtime.HugepageLimit{{PageSize: "2MB", Limit: 1 << 21}}}, host: full,
			want: specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 1 << 21}}}},
		{name: "hugepages dropped without hugetlb", r: &runtime.LinuxContainerResources{HugepageLimits: []*runtime.HugepageLimit{{PageSize: "1GB", Limit: 1 << 30}}}},
		{name: "unified on v2", r: &runtime.LinuxContainerResources{Unified: map[string]string{"memory.high": "1000000"}}, host: Host{CgroupV2: true},
			want: specs.LinuxResources{Unified: map[string]string{"memory.high": "1000000"}}},
		{name: "unified on v1", r: &runtime.LinuxContainerResources{Unified: map[string]string{"memory.high": "1"}}, err: errdefs.ErrInvalidArgument},
		{name: "unified path escape", r: &runtime.LinuxContainerResources{Unified: map[string]string{"../memory.high": "1"}}, host: Host{CgroupV2: true}, err: errdefs.ErrInvalidArgument},
		{name: "bad page size", r: &runtime.LinuxContainerResources{HugepageLimits: []*runtime.HugepageLimit{{PageSize: "2M"}}}, err: errdefs.ErrInvalidArgument},
		{name: "negative memory", r: &runtime.LinuxContainerResources{MemoryLimitInBytes: -5}, err: errdefs.ErrInvalidArgument},
		{name: "negative shares", r: &runtime.LinuxContainerResources{CpuShares: -1}, err: errdefs.ErrInvalidArgument},
		{name: "quota below -1", r: &runtime.LinuxContainerResources{CpuQuota: -2}, err: errdefs.ErrInvalidArgument},
		{name: "bad cpuset", r: &runtime.LinuxContainerResources{CpusetCpus: "0-a"}, err: errdefs.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := linuxResources("linux.resources", tc.r, tc.host)
			wantErr(t, err, tc.err)
			if err != nil {
				return
			}
			if !equalJSON(t, got, &tc.want) {
				t.Fatalf("resources %s, want %s", toJSON(t, got), toJSON(t, &tc.want))
			}
		})
	}
}

func TestOOMScoreAdj(t *testing.T) {
	for v, ok := range map[int64]bool{-1000: true, 0: true, 1000: true, 1001: false, -1001: false} {
		_, err := oomScoreAdj("oom", v, Host{})
		if (err == nil) != ok {
			t.Errorf("%d: %v", v, err)
		}
	}
	floor := -500
	for v, want := range map[int64]int{-998: -500, -500: -500, 0: 0, 1000: 1000} {
		got, err := oomScoreAdj("oom", v, Host{OOMScoreAdjMin: &floor})
		if err != nil || *got != want {
			t.Errorf("%d with floor -500 = %v, %v; want %d", v, got, err, want)
		}
	}
}

func TestCgroupsPath(t *testing.T) {
	for _, tc := range []struct {
		parent, id string
		rt         Runtime
		want       string
		err        error
	}{
		{parent: "/kubepods/burstable/pod1", id: "c1", want: "/kubepods/burstable/pod1/c1"},
		{parent: "", id: "c1", want: "/cri-runtime/c1"},
		{parent: "", id: "c1", rt: Runtime{DefaultCgroupParent: "/mine"}, want: "/mine/c1"},
		{parent: "kubepods-burstable-pod1.slice", id: "c1", rt: Runtime{CgroupDriver: Systemd}, want: "kubepods-burstable-pod1.slice:cri-runtime:c1"},
		{parent: "", id: "c1", rt: Runtime{CgroupDriver: Systemd, SystemdPrefix: "p"}, want: "system.slice:p:c1"},
		{parent: "kubepods/pod1", id: "c1", err: errdefs.ErrInvalidArgument},
		{parent: "/kubepods/../etc", id: "c1", err: errdefs.ErrInvalidArgument},
		{parent: "/kubepods", id: "../x", err: errdefs.ErrInvalidArgument},
		{parent: "/kubepods", id: "", err: errdefs.ErrInvalidArgument},
		{parent: "/kubepods", id: "..", err: errdefs.ErrInvalidArgument},
		{parent: "/kubepods", id: "c1", rt: Runtime{CgroupDriver: Systemd}, err: errdefs.ErrInvalidArgument},
		{parent: "a.slice", id: "c:1", rt: Runtime{CgroupDriver: Systemd}, err: errdefs.ErrInvalidArgument},
		{parent: "/p", id: "c", rt: Runtime{CgroupDriver: "other"}, err: errdefs.ErrInvalidArgument},
	} {
		got, err := CgroupsPath(tc.parent, tc.id, tc.rt)
		wantErr(t, err, tc.err)
		if got != tc.want {
			t.Errorf("CgroupsPath(%q, %q, %+v) = %q, want %q", tc.parent, tc.id, tc.rt, got, tc.want)
		}
	}
}
