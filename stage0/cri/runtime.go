package cri

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/pod"
	"github.com/nosecone/nscn/networking/cni"
	"github.com/nosecone/nscn/stage0/apps"
	"github.com/nosecone/nscn/stage0/fetch"
	"github.com/nosecone/nscn/stage0/prepare"
)

// The annotations that make a pod a CRI sandbox and an app a CRI
// container: the CRI's metadata, as JSON, kept in the pod manifest, so
// that the pods on disk are the whole state.
const (
	SandboxAnnotation   = "nscn.io/cri/sandbox"
	ContainerAnnotation = "nscn.io/cri/container"
)

// sandboxReadyTimeout bounds the wait for a new sandbox to be ready: a
// kvm one boots a VM, under TCG in seconds.
const sandboxReadyTimeout = 2 * time.Minute

// sandboxMeta is a sandbox's CRI metadata.
type sandboxMeta struct {
	Name           string            `json:"name"`
	UID            string            `json:"uid"`
	Namespace      string            `json:"namespace"`
	Attempt        uint32            `json:"attempt"`
	Labels         map[string]string `json:"labels,omitempty"`
	Annotations    map[string]string `json:"annotations,omitempty"`
	LogDirectory   string            `json:"logDirectory,omitempty"`
	RuntimeHandler string            `json:"runtimeHandler,omitempty"`
	HostNetwork    bool              `json:"hostNetwork,omitempty"`
	CreatedAt      int64             `json:"createdAt"`
}

// containerMeta is a container's CRI metadata.
type containerMeta struct {
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	Attempt     uint32            `json:"attempt"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Image       string            `json:"image"`    // as the client named it
	ImageRef    string            `json:"imageRef"` // the image ID
	LogPath     string            `json:"logPath,omitempty"`
	CreatedAt   int64             `json:"createdAt"`
}

// sandboxID is the CRI ID of pod uuid: its 32 hex digits.
func sandboxID(uuid string) string { return strings.ReplaceAll(uuid, "-", "") }

// podUUID is the pod UUID of a sandbox ID (or the first 32 hex digits of
// a container ID), or "" when id is not one.
func podUUID(id string) string {
	if len(id) < 32 {
		return ""
	}
	h := id[:32]
	if _, err := hex.DecodeString(h); err != nil || strings.ToLower(h) != h {
		return ""
	}
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// appName is the app of a container ID: "c" and the 20 hex digits after
// the sandbox's 32.
func appName(id string) string {
	if len(id) != 64 || podUUID(id) == "" {
		return ""
	}
	if _, err := hex.DecodeString(id[32:]); err != nil {
		return ""
	}
	return "c" + id[32:52]
}

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

// nscn runs the nscn command line args (after the global flags the server
// was started with); a failure's error carries its stderr.
func (s *Server) nscn(ctx context.Context, args ...string) error {
	all := append(append([]string(nil), s.nscnArgs[1:]...), args...)
	cmd := exec.CommandContext(ctx, s.nscnArgs[0], all...) //nolint:gosec // G204: nscn itself, with arguments the server built
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("nscn %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return nil
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
	meta := sandboxMeta{
		Name: md.GetName(), UID: md.GetUid(), Namespace: md.GetNamespace(), Attempt: md.GetAttempt(),
		Labels: cfg.GetLabels(), Annotations: cfg.GetAnnotations(), LogDirectory: cfg.GetLogDirectory(),
		RuntimeHandler: req.GetRuntimeHandler(),
		HostNetwork:    cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetNetwork() == runtimeapi.NamespaceMode_NODE,
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
	if len(cfg.GetPortMappings()) > 0 {
		return nil, toStatus(errdefs.Newf(errdefs.ErrNotImplemented, "sandbox port mappings are not supported yet"))
	}
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
	all := append(append([]string(nil), s.nscnArgs[1:]...), args...)
	cmd := exec.Command(s.nscnArgs[0], all...) //nolint:gosec,noctx // G204: nscn itself; the sandbox must outlive the request's context
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, toStatus(fmt.Errorf("start sandbox: %w", err))
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	deadline := time.NewTimer(sandboxReadyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if b, err := os.ReadFile(uuidFile); err == nil && len(bytes.TrimSpace(b)) > 0 { //nolint:gosec // G304: the server's own temporary file
			uuid := strings.TrimSpace(string(b))
			if p, err := pod.Get(ctx, s.dataDir, uuid); err == nil {
				if _, err := p.Ready(ctx); err == nil && p.State == pod.Running {
					s.log.Info("sandbox ready", "sandbox", sandboxID(uuid), "name", meta.Namespace+"/"+meta.Name)
					return &runtimeapi.RunPodSandboxResponse{PodSandboxId: sandboxID(uuid)}, nil
				}
			}
		}
		select {
		case err := <-exited:
			out, _ := os.ReadFile(logPath) //nolint:gosec // G304: the server's own log
			return nil, toStatus(fmt.Errorf("sandbox ended before it was ready: %w: %s", err, strings.TrimSpace(string(out))))
		case <-deadline.C:
			_ = cmd.Process.Kill()
			return nil, toStatus(errdefs.Unavailable("sandbox not ready within %v", sandboxReadyTimeout))
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			return nil, toStatus(ctx.Err())
		case <-tick.C:
		}
	}
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

func labelsMatch(have, want map[string]string) bool {
	for k, v := range want {
		if hv, ok := have[k]; !ok || hv != v {
			return false
		}
	}
	return true
}

// container is a CRI container as read from its app.
type container struct {
	sb   *sandbox
	app  string
	meta containerMeta
}

func (s *Server) containersOf(sb *sandbox) []*container {
	var out []*container
	for _, ra := range sb.pm.Apps {
		v, ok := ra.Annotations.Get(ContainerAnnotation)
		if !ok {
			continue
		}
		c := &container{sb: sb, app: ra.Name.String()}
		if json.Unmarshal([]byte(v), &c.meta) != nil {
			continue
		}
		out = append(out, c)
	}
	return out
}

// container finds the container id names, nil when none does.
func (s *Server) container(ctx context.Context, id string) (*container, error) {
	app := appName(id)
	if app == "" {
		return nil, nil
	}
	sb, err := s.sandbox(ctx, id[:32])
	if err != nil || sb == nil {
		return nil, err
	}
	for _, c := range s.containersOf(sb) {
		if c.app == app {
			return c, nil
		}
	}
	return nil, nil
}

// CreateContainer adds the container's app to its sandbox's pod (nscn app
// add): the image from the store, the command and arguments, the
// environment, the working directory, the user.
func (s *Server) CreateContainer(ctx context.Context, req *runtimeapi.CreateContainerRequest) (*runtimeapi.CreateContainerResponse, error) {
	sb, err := s.sandbox(ctx, req.GetPodSandboxId())
	if err != nil {
		return nil, toStatus(err)
	}
	if sb == nil {
		return nil, toStatus(errdefs.NotFound("sandbox %s", req.GetPodSandboxId()))
	}
	cfg := req.GetConfig()
	if cfg.GetMetadata().GetName() == "" {
		return nil, toStatus(errdefs.InvalidArgument("container metadata needs a name"))
	}
	for _, c := range s.containersOf(sb) {
		if c.meta.Name == cfg.GetMetadata().GetName() && c.meta.Attempt == cfg.GetMetadata().GetAttempt() {
			return nil, toStatus(errdefs.AlreadyExists("container %s attempt %d exists in sandbox %s: %s", c.meta.Name, c.meta.Attempt, sb.id, c.meta.ID))
		}
	}
	im, err := s.find(ctx, cfg.GetImage().GetImage())
	if err != nil {
		return nil, toStatus(err)
	}
	if im == nil {
		return nil, toStatus(errdefs.NotFound("image %s is not pulled", cfg.GetImage().GetImage()))
	}
	var r [16]byte
	if _, err := rand.Read(r[:]); err != nil {
		return nil, toStatus(err)
	}
	id := sb.id + hex.EncodeToString(r[:])
	meta := containerMeta{
		ID: id, Name: cfg.GetMetadata().GetName(), Attempt: cfg.GetMetadata().GetAttempt(),
		Labels: cfg.GetLabels(), Annotations: cfg.GetAnnotations(),
		Image: cfg.GetImage().GetImage(), ImageRef: im.id, CreatedAt: time.Now().UnixNano(),
	}
	if cfg.GetLogPath() != "" && sb.meta.LogDirectory != "" {
		meta.LogPath = filepath.Join(sb.meta.LogDirectory, cfg.GetLogPath())
	}
	mj, err := json.Marshal(meta)
	if err != nil {
		return nil, toStatus(err)
	}
	app := prepare.App{
		Image: im.newest.Key, Name: appName(id), WorkingDir: cfg.GetWorkingDir(),
		Annotations: types.Annotations{{Name: ContainerAnnotation, Value: string(mj)}},
	}
	if len(cfg.GetMounts()) > 0 {
		return nil, toStatus(errdefs.Newf(errdefs.ErrNotImplemented, "container mounts are not supported yet"))
	}
	// The CRI's command replaces the image's entrypoint, its args the
	// image's cmd: prepare's --exec and arguments, for OCI images.
	if cmd := cfg.GetCommand(); len(cmd) > 0 {
		app.Exec = cmd[0]
		app.Args = append(append([]string(nil), cmd[1:]...), cfg.GetArgs()...)
	} else {
		app.Args = cfg.GetArgs()
	}
	for _, kv := range cfg.GetEnvs() {
		app.Env = append(app.Env, types.EnvironmentVariable{Name: kv.GetKey(), Value: string(kv.GetValue())})
	}
	sc := cfg.GetLinux().GetSecurityContext()
	switch {
	case sc.GetRunAsUser() != nil:
		app.User = fmt.Sprint(sc.GetRunAsUser().GetValue())
	case sc.GetRunAsUsername() != "":
		app.User = sc.GetRunAsUsername()
	}
	if sc.GetRunAsGroup() != nil {
		app.Group = fmt.Sprint(sc.GetRunAsGroup().GetValue())
	}
	app.ReadOnlyRootfs = sc.GetReadonlyRootfs()
	f := s.newFetcher()
	f.PullPolicy = fetch.PullNever
	name, err := apps.Add(ctx, s.appsConfig(), sb.pod.UUID, apps.AddOptions{
		Prepare: prepare.Options{Fetcher: f},
		App:     app,
	})
	if err != nil {
		return nil, toStatus(err)
	}
	s.log.Info("container created", "container", id, "app", name, "sandbox", sb.id)
	return &runtimeapi.CreateContainerResponse{ContainerId: id}, nil
}

// StartContainer starts the container's app.
func (s *Server) StartContainer(ctx context.Context, req *runtimeapi.StartContainerRequest) (*runtimeapi.StartContainerResponse, error) {
	c, err := s.mustContainer(ctx, req.GetContainerId())
	if err != nil {
		return nil, toStatus(err)
	}
	if err := apps.Start(ctx, s.appsConfig(), c.sb.pod.UUID, c.app); err != nil {
		return nil, toStatus(err)
	}
	return &runtimeapi.StartContainerResponse{}, nil
}

// StopContainer stops the container's app; one that is not running is
// stopped already.
func (s *Server) StopContainer(ctx context.Context, req *runtimeapi.StopContainerRequest) (*runtimeapi.StopContainerResponse, error) {
	c, err := s.container(ctx, req.GetContainerId())
	if err != nil || c == nil {
		return &runtimeapi.StopContainerResponse{}, toStatus(err)
	}
	if st, err := apps.StatusOf(ctx, s.dataDir, c.sb.pod.UUID, c.app); err == nil && st.State != apps.Running {
		return &runtimeapi.StopContainerResponse{}, nil
	}
	if err := apps.Stop(ctx, s.appsConfig(), c.sb.pod.UUID, c.app); err != nil {
		return nil, toStatus(err)
	}
	return &runtimeapi.StopContainerResponse{}, nil
}

// RemoveContainer removes the container's app (stopping it first); one
// that is gone is removed already.
func (s *Server) RemoveContainer(ctx context.Context, req *runtimeapi.RemoveContainerRequest) (*runtimeapi.RemoveContainerResponse, error) {
	c, err := s.container(ctx, req.GetContainerId())
	if err != nil || c == nil {
		return &runtimeapi.RemoveContainerResponse{}, toStatus(err)
	}
	if c.sb.pod.State != pod.Running {
		// The pod's apps go with the pod (RemovePodSandbox).
		return &runtimeapi.RemoveContainerResponse{}, nil
	}
	if err := apps.Rm(ctx, s.appsConfig(), c.sb.pod.UUID, c.app); err != nil {
		return nil, toStatus(err)
	}
	return &runtimeapi.RemoveContainerResponse{}, nil
}

func (s *Server) mustContainer(ctx context.Context, id string) (*container, error) {
	c, err := s.container(ctx, id)
	if err == nil && c == nil {
		err = errdefs.NotFound("container %s", id)
	}
	return c, err
}

func criState(st apps.State) runtimeapi.ContainerState {
	switch st {
	case apps.Created:
		return runtimeapi.ContainerState_CONTAINER_CREATED
	case apps.Running:
		return runtimeapi.ContainerState_CONTAINER_RUNNING
	case apps.Exited:
		return runtimeapi.ContainerState_CONTAINER_EXITED
	}
	return runtimeapi.ContainerState_CONTAINER_UNKNOWN
}

// ContainerStatus reports a container from its app's status.
func (s *Server) ContainerStatus(ctx context.Context, req *runtimeapi.ContainerStatusRequest) (*runtimeapi.ContainerStatusResponse, error) {
	c, err := s.mustContainer(ctx, req.GetContainerId())
	if err != nil {
		return nil, toStatus(err)
	}
	st, err := apps.StatusOf(ctx, s.dataDir, c.sb.pod.UUID, c.app)
	if err != nil {
		return nil, toStatus(err)
	}
	cs := &runtimeapi.ContainerStatus{
		Id:       c.meta.ID,
		Metadata: &runtimeapi.ContainerMetadata{Name: c.meta.Name, Attempt: c.meta.Attempt},
		State:    criState(st.State), CreatedAt: c.meta.CreatedAt,
		Image: &runtimeapi.ImageSpec{Image: c.meta.Image}, ImageRef: c.meta.ImageRef, ImageId: c.meta.ImageRef,
		Labels: c.meta.Labels, Annotations: c.meta.Annotations, LogPath: c.meta.LogPath,
	}
	if !st.Started.IsZero() {
		cs.StartedAt = st.Started.UnixNano()
	}
	if st.ExitCode != nil {
		cs.ExitCode = int32(*st.ExitCode) //nolint:gosec // G115: an exit status is a byte, or 128+signal
		cs.FinishedAt = st.Finished.UnixNano()
		cs.Reason = "Completed"
		if *st.ExitCode != 0 {
			cs.Reason = "Error"
		}
	}
	return &runtimeapi.ContainerStatusResponse{Status: cs}, nil
}

// ListContainers lists the containers of every sandbox, filtered by ID
// (or a prefix), sandbox, state and labels.
func (s *Server) ListContainers(ctx context.Context, req *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	all, err := s.sandboxes(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	f := req.GetFilter()
	resp := &runtimeapi.ListContainersResponse{}
	for _, sb := range all {
		if f.GetPodSandboxId() != "" && !strings.HasPrefix(sb.id, f.GetPodSandboxId()) {
			continue
		}
		sts, err := apps.List(ctx, s.dataDir, sb.pod.UUID)
		if err != nil {
			continue
		}
		for _, c := range s.containersOf(sb) {
			if f.GetId() != "" && !strings.HasPrefix(c.meta.ID, f.GetId()) {
				continue
			}
			i := slices.IndexFunc(sts, func(st apps.Status) bool { return st.Name == c.app })
			state := runtimeapi.ContainerState_CONTAINER_UNKNOWN
			if i >= 0 {
				state = criState(sts[i].State)
			}
			if f.GetState() != nil && f.GetState().GetState() != state {
				continue
			}
			if !labelsMatch(c.meta.Labels, f.GetLabelSelector()) {
				continue
			}
			resp.Containers = append(resp.Containers, &runtimeapi.Container{
				Id: c.meta.ID, PodSandboxId: sb.id,
				Metadata: &runtimeapi.ContainerMetadata{Name: c.meta.Name, Attempt: c.meta.Attempt},
				Image:    &runtimeapi.ImageSpec{Image: c.meta.Image}, ImageRef: c.meta.ImageRef, ImageId: c.meta.ImageRef,
				State: state, CreatedAt: c.meta.CreatedAt, Labels: c.meta.Labels, Annotations: c.meta.Annotations,
			})
		}
	}
	return resp, nil
}

// ExecSync runs a command in a running container, confined as the
// container is (nscn app exec), and returns its output and exit status.
func (s *Server) ExecSync(ctx context.Context, req *runtimeapi.ExecSyncRequest) (*runtimeapi.ExecSyncResponse, error) {
	c, err := s.mustContainer(ctx, req.GetContainerId())
	if err != nil {
		return nil, toStatus(err)
	}
	if len(req.GetCmd()) == 0 {
		return nil, toStatus(errdefs.InvalidArgument("exec: no command"))
	}
	if t := req.GetTimeout(); t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(t)*time.Second)
		defer cancel()
	}
	args := append(append(append([]string(nil), s.nscnArgs[1:]...), "app", "exec", c.sb.pod.UUID, "--app="+c.app, "--"), req.GetCmd()...)
	cmd := exec.CommandContext(ctx, s.nscnArgs[0], args...) //nolint:gosec // G204: nscn itself, with the client's command for the container
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	// At the deadline the command goes, not only nscn: the entered
	// process stays in nscn's process group (in the pod's PID namespace,
	// but a group is the host's to signal), so the whole group is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return nil, toStatus(ctx.Err())
	case errors.As(err, &ee):
		return &runtimeapi.ExecSyncResponse{Stdout: out.Bytes(), Stderr: errb.Bytes(), ExitCode: int32(ee.ExitCode())}, nil //nolint:gosec // G115: an exit status
	case err != nil:
		return nil, toStatus(err)
	}
	return &runtimeapi.ExecSyncResponse{Stdout: out.Bytes(), Stderr: errb.Bytes()}, nil
}
