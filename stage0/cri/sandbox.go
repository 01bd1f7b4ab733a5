package cri

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/appc/spec/schema"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/pod"
	"github.com/nosecone/nscn/networking/cni"
)

// sandbox is a CRI sandbox as read from its pod.
type sandbox struct {
	id   string
	pod  *pod.Pod
	pm   *schema.PodManifest
	meta sandboxMeta
}

// sandboxes lists the pods that are CRI sandboxes.
func (s *Server) sandboxes(ctx context.Context) ([]*sandbox, error) {
	pods, err := pod.List(ctx, s.dataDir)
	if err != nil {
		return nil, err
	}
	var out []*sandbox
	for _, p := range pods {
		if sb := s.readSandbox(ctx, p); sb != nil {
			out = append(out, sb)
		}
	}
	return out, nil
}

func (s *Server) readSandbox(ctx context.Context, p *pod.Pod) *sandbox {
	pm, err := p.Manifest(ctx)
	if err != nil {
		return nil
	}
	v, ok := pm.UserAnnotations[SandboxAnnotation]
	if !ok {
		return nil
	}
	sb := &sandbox{id: sandboxID(p.UUID), pod: p, pm: pm}
	if err := json.Unmarshal([]byte(v), &sb.meta); err != nil {
		s.log.Warn("pod with unreadable CRI metadata", "pod", p.UUID, "error", err)
		return nil
	}
	return sb
}

// sandbox finds the sandbox id names, nil when none does.
func (s *Server) sandbox(ctx context.Context, id string) (*sandbox, error) {
	uuid := podUUID(id)
	if uuid == "" || len(id) != 32 {
		return nil, nil
	}
	p, err := pod.Get(ctx, s.dataDir, uuid)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return s.readSandbox(ctx, p), nil
}

// RunPodSandbox starts a mutable pod with no apps (nscn app sandbox) on
// the pod network, or the host's, with the sandbox's hostname and DNS,
// and waits until it is ready.
func (s *Server) RunPodSandbox(ctx context.Context, req *runtimeapi.RunPodSandboxRequest) (*runtimeapi.RunPodSandboxResponse, error) {
	cfg := req.GetConfig()
	md := cfg.GetMetadata()
	if md.GetName() == "" || md.GetUid() == "" || md.GetNamespace() == "" {
		return nil, toStatus(errdefs.InvalidArgument("sandbox metadata needs a name, a uid and a namespace"))
	}
	if err := checkSandboxSecurity(cfg); err != nil {
		return nil, toStatus(err)
	}
	hostNet := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetNetwork() == runtimeapi.NamespaceMode_NODE
	sysctls, err := parseSysctls(cfg.GetLinux().GetSysctls(), hostNet)
	if err != nil {
		return nil, toStatus(err)
	}
	if len(sysctls) > 0 && req.GetRuntimeHandler() == "kvm" {
		return nil, toStatus(errdefs.Newf(errdefs.ErrNotImplemented, "sandbox sysctls on the kvm runtime handler: they would be the guest kernel's, which nscn does not set yet"))
	}
	meta := sandboxMeta{
		Name: md.GetName(), UID: md.GetUid(), Namespace: md.GetNamespace(), Attempt: md.GetAttempt(),
		Labels: cfg.GetLabels(), Annotations: cfg.GetAnnotations(), LogDirectory: cfg.GetLogDirectory(),
		RuntimeHandler: req.GetRuntimeHandler(),
		HostNetwork:    hostNet,
		CreatedAt:      time.Now().UnixNano(),
	}
	args := []string{"app", "sandbox"}
	switch meta.RuntimeHandler {
	case "", "nspawn":
	case "kvm":
		args = append(args, "--stage1-from-dir=stage1-kvm.aci")
	default:
		return nil, toStatus(errdefs.InvalidArgument("runtime handler %q: nscn has nspawn (the default) and kvm", meta.RuntimeHandler))
	}
	ipcArgs, err := sandboxIPCArgs(cfg, meta.RuntimeHandler, sysctls)
	if err != nil {
		return nil, toStatus(err)
	}
	args = append(args, ipcArgs...)
	meta.HostIPC = len(ipcArgs) > 0
	pidArgs, err := sandboxPIDArgs(cfg, meta.RuntimeHandler)
	if err != nil {
		return nil, toStatus(err)
	}
	args = append(args, pidArgs...)
	meta.HostPID = len(pidArgs) > 0
	if meta.HostNetwork {
		args = append(args, "--net=host")
	} else {
		args = append(args, "--net=default")
		if h := cfg.GetHostname(); h != "" {
			args = append(args, "--hostname="+h)
		}
	}
	if dns := cfg.GetDnsConfig(); dns != nil && !meta.HostNetwork {
		for _, v := range dns.GetServers() {
			args = append(args, "--dns="+v)
		}
		for _, v := range dns.GetSearches() {
			args = append(args, "--dns-search="+v)
		}
		for _, v := range dns.GetOptions() {
			args = append(args, "--dns-opt="+v)
		}
	}
	publish, err := publishArgs(cfg.GetPortMappings(), meta.HostNetwork)
	if err != nil {
		return nil, toStatus(err)
	}
	args = append(args, publish...)
	mj, err := json.Marshal(meta)
	if err != nil {
		return nil, toStatus(err)
	}
	// tmp/ may be gone (nscn gc empties it); the sandbox's files go there.
	if err := os.MkdirAll(filepath.Join(s.dataDir, "tmp"), 0o700); err != nil {
		return nil, toStatus(fmt.Errorf("sandbox: %w", err))
	}
	tmp, err := os.MkdirTemp(filepath.Join(s.dataDir, "tmp"), "cri-sandbox-")
	if err != nil {
		return nil, toStatus(fmt.Errorf("sandbox: %w", err))
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	uuidFile := filepath.Join(tmp, "uuid")
	args = append(args, "--uuid-file-save="+uuidFile, "--user-annotation="+SandboxAnnotation+"="+string(mj))

	// The sandbox outlives this call, and this server: its own session,
	// no terminal, output to a log beside the pods. The server reaps it
	// while it runs.
	logPath := filepath.Join(s.dataDir, "tmp", "cri-"+md.GetUid()+"-"+fmt.Sprint(md.GetAttempt())+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC|syscall.O_NOFOLLOW, 0o600) //nolint:gosec // G304: the server's log under the data directory's tmp/
	if err != nil {
		return nil, toStatus(fmt.Errorf("sandbox log: %w", err))
	}
	defer func() { _ = logf.Close() }()
	// The sandbox's stage1 says READY=1 here once it has written the
	// pod's ready file (NOTIFY_SOCKET, Documentation/stage1-flavors.md,
	// "Readiness"), which wakes the wait below at once; the poll stays
	// for a stage1 that does not. It replaces a NOTIFY_SOCKET of the
	// server's own, which is not the sandbox's to use.
	env := withoutEnv(os.Environ(), "NOTIFY_SOCKET")
	var readyc <-chan struct{} // nil: the poll alone
	if notify, err := listenNotify(filepath.Join(tmp, "notify")); err != nil {
		// A data directory whose path is too long for a socket's.
		s.log.Debug("sandbox readiness by polling only", "error", err)
	} else {
		defer notify.close()
		env, readyc = append(env, "NOTIFY_SOCKET="+notify.addr), notify.ready
	}
	all := append(append([]string(nil), s.nscnArgs[1:]...), args...)
	cmd := exec.Command(s.nscnArgs[0], all...) //nolint:gosec,noctx // G204: nscn itself; the sandbox must outlive the request's context
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, toStatus(fmt.Errorf("start sandbox: %w", err))
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	deadline := time.NewTimer(sandboxReadyTimeout)
	defer deadline.Stop()
	// A sandbox's start is what a kubelet waits for (bench figure 10):
	// polled every 10 ms, the wait adds 5 ms on average, where 50 added
	// 25. A poll is a few small reads.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if b, err := os.ReadFile(uuidFile); err == nil && len(bytes.TrimSpace(b)) > 0 { //nolint:gosec // G304: the server's own temporary file
			uuid := strings.TrimSpace(string(b))
			if p, err := pod.Get(ctx, s.dataDir, uuid); err == nil {
				if _, err := p.Ready(ctx); err == nil && p.State == pod.Running {
					// Before any container: the sysctls are the pod's
					// from its first app on.
					if err := setSysctls(ctx, p, sysctls); err != nil {
						s.log.Warn("sandbox sysctls failed: removing the sandbox", "sandbox", sandboxID(uuid), "error", err)
						if rerr := s.removeFailed(context.WithoutCancel(ctx), p); rerr != nil {
							s.log.Warn("remove the failed sandbox", "sandbox", sandboxID(uuid), "error", rerr)
						}
						return nil, toStatus(err)
					}
					s.log.Info("sandbox ready", "sandbox", sandboxID(uuid), "name", meta.Namespace+"/"+meta.Name)
					return &runtimeapi.RunPodSandboxResponse{PodSandboxId: sandboxID(uuid)}, nil
				}
			}
		}
		select {
		case err := <-exited:
			out, _ := os.ReadFile(logPath) //nolint:gosec // G304: the server's own log
			s.removeUnready(context.WithoutCancel(ctx), uuidFile)
			return nil, toStatus(fmt.Errorf("sandbox ended before it was ready: %w: %s", err, strings.TrimSpace(string(out))))
		case <-deadline.C:
			_ = cmd.Process.Kill()
			return nil, toStatus(errdefs.Unavailable("sandbox not ready within %v", sandboxReadyTimeout))
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			return nil, toStatus(ctx.Err())
		case <-tick.C:
		case <-readyc:
		}
	}
}

// sandboxNotify receives a sandbox's sd_notify messages (sd_notify(3)):
// ready gets a value for each READY=1.
type sandboxNotify struct {
	addr  string
	conn  *net.UnixConn
	ready chan struct{}
}

// listenNotify binds the unix datagram socket at path (in a directory
// only the server can enter) and reads it until close.
func listenNotify(path string) (*sandboxNotify, error) {
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("listen for readiness: %w", err)
	}
	n := &sandboxNotify{addr: path, conn: conn, ready: make(chan struct{}, 1)}
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				return // closed
			}
			for _, l := range strings.Split(string(buf[:k]), "\n") {
				if l == "READY=1" {
					select {
					case n.ready <- struct{}{}:
					default:
					}
				}
			}
		}
	}()
	return n, nil
}

func (n *sandboxNotify) close() { _ = n.conn.Close() }

// withoutEnv is env without the variable name.
func withoutEnv(env []string, name string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// StopPodSandbox stops the sandbox's pod (its containers with it). A
// sandbox that is gone or stopped is stopped already.
func (s *Server) StopPodSandbox(ctx context.Context, req *runtimeapi.StopPodSandboxRequest) (*runtimeapi.StopPodSandboxResponse, error) {
	sb, err := s.sandbox(ctx, req.GetPodSandboxId())
	if err != nil || sb == nil {
		return &runtimeapi.StopPodSandboxResponse{}, toStatus(err)
	}
	if err := s.stopPod(ctx, sb); err != nil {
		return nil, toStatus(err)
	}
	return &runtimeapi.StopPodSandboxResponse{}, nil
}

func (s *Server) stopPod(ctx context.Context, sb *sandbox) error {
	if sb.pod.State != pod.Running {
		return nil
	}
	if err := s.nscn(ctx, "stop", sb.pod.UUID); err != nil {
		return err
	}
	for {
		if err := sb.pod.Refresh(ctx); err != nil || sb.pod.State != pod.Running {
			return nil //nolint:nilerr // gone is stopped
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// removeFailed stops and removes pod p, a sandbox that failed before it
// was handed out.
func (s *Server) removeFailed(ctx context.Context, p *pod.Pod) error {
	if err := s.stopPod(ctx, &sandbox{pod: p}); err != nil {
		return err
	}
	return s.nscn(ctx, "rm", p.UUID)
}

// removeUnready removes the pod of a sandbox that ended before it was
// ready (its network failed, say), whose id no client was given, once its
// nscn has exited: nscn rm runs its stage1's gc, which undoes whatever of
// the network is left.
func (s *Server) removeUnready(ctx context.Context, uuidFile string) {
	b, err := os.ReadFile(uuidFile) //nolint:gosec // G304: the server's own temporary file
	uuid := strings.TrimSpace(string(b))
	if err != nil || uuid == "" {
		return // nscn ended before it made a pod
	}
	if err := s.nscn(ctx, "rm", uuid); err != nil {
		s.log.Warn("remove the sandbox that was never ready", "sandbox", sandboxID(uuid), "error", err)
	}
}

// RemovePodSandbox stops the sandbox if needed and removes its pod.
func (s *Server) RemovePodSandbox(ctx context.Context, req *runtimeapi.RemovePodSandboxRequest) (*runtimeapi.RemovePodSandboxResponse, error) {
	sb, err := s.sandbox(ctx, req.GetPodSandboxId())
	if err != nil || sb == nil {
		return &runtimeapi.RemovePodSandboxResponse{}, toStatus(err)
	}
	if err := s.stopPod(ctx, sb); err != nil {
		return nil, toStatus(err)
	}
	if err := s.nscn(ctx, "rm", sb.pod.UUID); err != nil {
		return nil, toStatus(err)
	}
	s.log.Info("sandbox removed", "sandbox", sb.id)
	return &runtimeapi.RemovePodSandboxResponse{}, nil
}

func (sb *sandbox) state() runtimeapi.PodSandboxState {
	if sb.pod.State == pod.Running {
		return runtimeapi.PodSandboxState_SANDBOX_READY
	}
	return runtimeapi.PodSandboxState_SANDBOX_NOTREADY
}

func (sb *sandbox) criMetadata() *runtimeapi.PodSandboxMetadata {
	return &runtimeapi.PodSandboxMetadata{Name: sb.meta.Name, Uid: sb.meta.UID, Namespace: sb.meta.Namespace, Attempt: sb.meta.Attempt}
}

// ip is the sandbox's first address on the pod network, and the others.
func (sb *sandbox) ips() []string {
	recs, err := cni.ReadRecords(sb.pod.Path)
	if err != nil {
		return nil
	}
	var out []string
	for _, r := range recs {
		res, err := r.ParsedResult()
		if err != nil || res == nil {
			continue
		}
		for _, a := range cni.PodIPs(res, r.IfName) {
			out = append(out, a.IP.String())
		}
	}
	return out
}

// PodSandboxStatus reports a sandbox: ready while its pod runs, its
// address on the pod network, its metadata.
func (s *Server) PodSandboxStatus(ctx context.Context, req *runtimeapi.PodSandboxStatusRequest) (*runtimeapi.PodSandboxStatusResponse, error) {
	sb, err := s.sandbox(ctx, req.GetPodSandboxId())
	if err != nil {
		return nil, toStatus(err)
	}
	if sb == nil {
		return nil, toStatus(errdefs.NotFound("sandbox %s", req.GetPodSandboxId()))
	}
	st := &runtimeapi.PodSandboxStatus{
		Id: sb.id, Metadata: sb.criMetadata(), State: sb.state(), CreatedAt: sb.meta.CreatedAt,
		Labels: sb.meta.Labels, Annotations: sb.meta.Annotations, RuntimeHandler: sb.meta.RuntimeHandler,
		Linux: &runtimeapi.LinuxPodSandboxStatus{Namespaces: &runtimeapi.Namespace{Options: &runtimeapi.NamespaceOption{}}},
	}
	if sb.meta.HostNetwork {
		st.Linux.Namespaces.Options.Network = runtimeapi.NamespaceMode_NODE
	}
	if sb.meta.HostIPC {
		st.Linux.Namespaces.Options.Ipc = runtimeapi.NamespaceMode_NODE
	}
	if sb.meta.HostPID {
		st.Linux.Namespaces.Options.Pid = runtimeapi.NamespaceMode_NODE
	}
	if ips := sb.ips(); len(ips) > 0 && !sb.meta.HostNetwork {
		st.Network = &runtimeapi.PodSandboxNetworkStatus{Ip: ips[0]}
		for _, ip := range ips[1:] {
			st.Network.AdditionalIps = append(st.Network.AdditionalIps, &runtimeapi.PodIP{Ip: ip})
		}
	}
	return &runtimeapi.PodSandboxStatusResponse{Status: st}, nil
}

// ListPodSandbox lists the sandboxes, filtered by ID (or a prefix),
// state and labels.
func (s *Server) ListPodSandbox(ctx context.Context, req *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	all, err := s.sandboxes(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	f := req.GetFilter()
	resp := &runtimeapi.ListPodSandboxResponse{}
	for _, sb := range all {
		if f.GetId() != "" && !strings.HasPrefix(sb.id, f.GetId()) {
			continue
		}
		if f.GetState() != nil && f.GetState().GetState() != sb.state() {
			continue
		}
		if !labelsMatch(sb.meta.Labels, f.GetLabelSelector()) {
			continue
		}
		resp.Items = append(resp.Items, &runtimeapi.PodSandbox{
			Id: sb.id, Metadata: sb.criMetadata(), State: sb.state(), CreatedAt: sb.meta.CreatedAt,
			Labels: sb.meta.Labels, Annotations: sb.meta.Annotations, RuntimeHandler: sb.meta.RuntimeHandler,
		})
	}
	return resp, nil
}
