package cni

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
)

// Result is what Setup gives a pod. Pkg/cni keeps no copy: the caller
// stores it with the sandbox (it is JSON) and reads it back for the pod's
// status. Teardown does not need it.
type Result struct {
	// IPs are the addresses of the pod's default interface (eth0), in
	// ip_pref order: the CRI reports IPs[0] as the pod IP and the rest as
	// its additional IPs. Empty if the plugins assigned none.
	IPs []netip.Addr `json:"ips"`
	// Attachments are the pod's networks, in the order they were added.
	Attachments []Attachment `json:"attachments"`
}

// Attachment is the result of one network (one conf list) for a pod.
type Attachment struct {
	Network    string      `json:"network"` // the conf list's "name"
	IfName     string      `json:"ifName"`  // the pod's interface: eth0, eth1, ...
	Interfaces []Interface `json:"interfaces,omitempty"`
	IPs        []IPConfig  `json:"ips,omitempty"`
	Routes     []Route     `json:"routes,omitempty"`
	DNS        DNS         `json:"dns"`
}

// Interface is an interface a plugin created or used; Sandbox is the
// netns path for one inside the pod, "" for one on the host (the veth's
// host end, the bridge).
type Interface struct {
	Name    string `json:"name"`
	Mac     string `json:"mac,omitempty"`
	Sandbox string `json:"sandbox,omitempty"`
}

// IPConfig is an address of the pod on Interface (a name from
// Interfaces; "" if the plugin did not say).
type IPConfig struct {
	Interface string       `json:"interface,omitempty"`
	Address   netip.Prefix `json:"address"`
	Gateway   netip.Addr   `json:"gateway,omitzero"`
}

// Route is a route of the pod; GW is zero for the interface's default.
type Route struct {
	Dst netip.Prefix `json:"dst"`
	GW  netip.Addr   `json:"gw,omitzero"`
}

// DNS is the DNS configuration a plugin returned.
type DNS struct {
	Nameservers []string `json:"nameservers,omitempty"`
	Domain      string   `json:"domain,omitempty"`
	Search      []string `json:"search,omitempty"`
	Options     []string `json:"options,omitempty"`
}

// toAttachment converts a plugin's result, of any CNI version, into an
// Attachment.
func toAttachment(nw *network, r types.Result) (Attachment, error) {
	res, err := types100.NewResultFromResult(r)
	if err != nil {
		return Attachment{}, fmt.Errorf("result of network %q: %w", nw.list.Name, err)
	}
	a := Attachment{
		Network: nw.list.Name,
		IfName:  nw.ifName,
		DNS: DNS{Nameservers: res.DNS.Nameservers, Domain: res.DNS.Domain,
			Search: res.DNS.Search, Options: res.DNS.Options},
	}
	for _, i := range res.Interfaces {
		a.Interfaces = append(a.Interfaces, Interface{Name: i.Name, Mac: i.Mac, Sandbox: i.Sandbox})
	}
	for _, ip := range res.IPs {
		c := IPConfig{Address: prefix(ip.Address), Gateway: addr(ip.Gateway)}
		if ip.Interface != nil && *ip.Interface >= 0 && *ip.Interface < len(res.Interfaces) {
			c.Interface = res.Interfaces[*ip.Interface].Name
		}
		a.IPs = append(a.IPs, c)
	}
	for _, rt := range res.Routes {
		if rt != nil {
			a.Routes = append(a.Routes, Route{Dst: prefix(rt.Dst), GW: addr(rt.GW)})
		}
	}
	return a, nil
}

// podIPs returns the addresses of the default interface, the first
// attachment's, ordered by pref ("ipv4", "ipv6" or "cni").
func podIPs(atts []Attachment, pref string) []netip.Addr {
	if len(atts) == 0 {
		return nil
	}
	a := atts[0]
	var all []netip.Addr
	for _, ip := range a.IPs {
		if ip.Interface == "" || ip.Interface == a.IfName {
			all = append(all, ip.Address.Addr())
		}
	}
	if pref == "cni" {
		return all
	}
	want := func(ip netip.Addr) bool { return ip.Is4() == (pref == "ipv4") }
	for i, ip := range all {
		if want(ip) {
			out := append([]netip.Addr{ip}, all[:i]...)
			return append(out, all[i+1:]...)
		}
	}
	return all
}

func prefix(n net.IPNet) netip.Prefix {
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}
	}
	ones, bits := n.Mask.Size()
	if a = a.Unmap(); a.Is4() && bits == 128 {
		ones -= 96
	}
	return netip.PrefixFrom(a, ones)
}

func addr(ip net.IP) netip.Addr {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Addr{}
	}
	return a.Unmap()
}
