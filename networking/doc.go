// Package networking gives a pod its network: it parses --net, creates the
// pod's network namespace, attaches it to CNI networks, forwards host ports
// into it, records all of it in the pod directory, and tears it down again.
//
// A stage1 calls it on the host, as root, from the host's mount namespace:
//
//	nets, err := networking.ParseNets(netFlag)          // --net=default,mynet:IP=10.1.2.3
//	res, err := networking.Setup(ctx, networking.Config{PodDir: ".", UUID: uuid, Nets: nets, ...})
//	// start the pod inside res.NetNS (empty for --net=host)
//	...
//	err = networking.Teardown(ctx, podDir)              // from gc; idempotent
//
// Setup is Prepare and then Pending.Add: a stage1 that starts the pod
// before its interfaces exist calls Prepare (every check, the namespace),
// starts the pod in Pending.NetNS, and runs Add (CNI ADD) beside it;
// stage1-nspawn does so for a pod with no app yet.
//
// Setup writes the pod directory's netns file (the namespace's path) and one
// JSON record per network under net-info/ (see cni.Record). Teardown needs
// nothing else: it works after the pod was killed, after a reboot (when the
// namespace pin is gone) and when run twice. The CNI plugins themselves are
// executables in Config.PluginDirs, built by scripts/build-cni-plugins.sh.
//
// Subpackages: netflag (the --net value, pure: stage0 checks it too),
// netns (namespace pins, running code inside one), cni (network
// configurations, plugin execution, records), portfwd (--port, host-port
// claims). Documentation/networking.md describes the behaviour
// for users and stage1 authors.
package networking
