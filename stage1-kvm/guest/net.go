package guest

// NetConfigFile is where the host's run entrypoint writes the guest's
// network (a JSON list of NIC), in the pod's stage1 rootfs; Init applies
// it before it starts systemd.
const NetConfigFile = "/nscn/state/kvm-net.json"

// NIC is one network interface of the guest, as CNI configured the pod's
// interface it stands for.
type NIC struct {
	Name   string   `json:"name"` // eth0, eth1, … (the pod's interface's)
	MAC    string   `json:"mac"`  // the pod's interface's, which the guest's NIC takes
	MTU    int      `json:"mtu"`
	Addrs  []string `json:"addrs"`  // CIDR
	Routes []Route  `json:"routes"` // in the order to add them
}

// Route is one IPv4 route of a NIC.
type Route struct {
	Dst string `json:"dst"`          // CIDR
	Gw  string `json:"gw,omitempty"` // empty: on the link
	Src string `json:"src,omitempty"`
}
