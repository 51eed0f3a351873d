package cni

import (
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/containernetworking/cni/libcni"
	types040 "github.com/containernetworking/cni/pkg/types/040"
	types100 "github.com/containernetworking/cni/pkg/types/100"
)

func mustCIDR(s string) net.IPNet {
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	n.IP = ip
	return *n
}

func TestToAttachmentAndPodIPs(t *testing.T) {
	nw := &network{list: &libcni.NetworkConfigList{Name: "net"}, ifName: "eth0"}
	res := &types100.Result{
		CNIVersion: "1.0.0",
		Interfaces: []*types100.Interface{
			{Name: "cni0"}, {Name: "veth1"}, {Name: "eth0", Mac: "aa:bb:cc:dd:ee:ff", Sandbox: "/run/netns/x"},
		},
		IPs: []*types100.IPConfig{
			{Interface: types100.Int(2), Address: mustCIDR("fd00::5/64"), Gateway: net.ParseIP("fd00::1")},
			{Interface: types100.Int(0), Address: mustCIDR("10.0.0.1/24")}, // the bridge's, not the pod's
			{Interface: types100.Int(2), Address: mustCIDR("10.88.0.5/16"), Gateway: net.ParseIP("10.88.0.1")},
		},
	}
	a, err := toAttachment(nw, res)
	if err != nil {
		t.Fatal(err)
	}
	if a.Network != "net" || a.IfName != "eth0" || len(a.Interfaces) != 3 || a.Interfaces[2].Sandbox != "/run/netns/x" {
		t.Fatalf("attachment %+v", a)
	}
	if a.IPs[2].Address != netip.MustParsePrefix("10.88.0.5/16") || a.IPs[2].Gateway != netip.MustParseAddr("10.88.0.1") ||
		a.IPs[1].Interface != "cni0" {
		t.Fatalf("IPs %+v", a.IPs)
	}
	v4, v6 := netip.MustParseAddr("10.88.0.5"), netip.MustParseAddr("fd00::5")
	for pref, want := range map[string][]netip.Addr{
		"ipv4": {v4, v6},
		"ipv6": {v6, v4},
		"cni":  {v6, v4},
	} {
		if got := podIPs([]Attachment{a}, pref); !slices.Equal(got, want) {
			t.Errorf("podIPs %s = %v, want %v", pref, got, want)
		}
	}
	if got := podIPs(nil, "ipv4"); got != nil {
		t.Errorf("podIPs of nothing = %v", got)
	}

	// A CNI 0.4.0 result, with a 16-byte IPv4 address and a 4-byte mask.
	old := &types040.Result{CNIVersion: "0.4.0", IPs: []*types040.IPConfig{{
		Address: net.IPNet{IP: net.ParseIP("10.1.2.3"), Mask: net.CIDRMask(8, 32)},
	}}}
	a, err = toAttachment(nw, old)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.IPs) != 1 || a.IPs[0].Address != netip.MustParsePrefix("10.1.2.3/8") || a.IPs[0].Interface != "" {
		t.Fatalf("0.4.0 IPs %+v", a.IPs)
	}
	if got := podIPs([]Attachment{a}, "ipv6"); len(got) != 1 || got[0] != netip.MustParseAddr("10.1.2.3") {
		t.Fatalf("podIPs of an IP without interface = %v", got)
	}
}

func TestSortForDelete(t *testing.T) {
	var atts []*libcni.NetworkAttachment
	for _, n := range []string{"lo", "eth0", "eth10", "eth2", "eth1"} {
		atts = append(atts, &libcni.NetworkAttachment{IfName: n})
	}
	sortForDelete(atts)
	var got []string
	for _, a := range atts {
		got = append(got, a.IfName)
	}
	if want := []string{"eth10", "eth2", "eth1", "eth0", "lo"}; !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
}
