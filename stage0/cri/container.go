package cri

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/appc/spec/schema/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/pod"
	"github.com/nosecone/nscn/pkg/stage1abi"
	"github.com/nosecone/nscn/stage0/apps"
	"github.com/nosecone/nscn/stage0/fetch"
	"github.com/nosecone/nscn/stage0/prepare"
)

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
	meta.Stdin = cfg.GetStdin()
	meta.StdinOnce = meta.Stdin && cfg.GetStdinOnce()
	meta.TTY = cfg.GetTty()
	if err := refuseTTY(sb, meta.TTY); err != nil {
		return nil, toStatus(err)
	}
	if meta.Stdin && sb.meta.RuntimeHandler == "kvm" {
		return nil, toStatus(errdefs.Newf(errdefs.ErrNotImplemented, "a container's stdin on the kvm runtime handler: stage1-kvm gives an added app no standard input"))
	}
	mj, err := json.Marshal(meta)
	if err != nil {
		return nil, toStatus(err)
	}
	app := prepare.App{
		Image: im.newest.Key, Name: appName(id), WorkingDir: cfg.GetWorkingDir(),
		Annotations: types.Annotations{{Name: ContainerAnnotation, Value: string(mj)}},
	}
	if meta.Stdin {
		app.Annotations = append(app.Annotations, types.Annotation{Name: stage1abi.AnnotationAppStdin, Value: "fifo"})
	}
	if meta.TTY {
		app.Annotations = append(app.Annotations, types.Annotation{Name: stage1abi.AnnotationAppTTY, Value: "true"})
	}
	if err := refuseDevices(cfg.GetDevices()); err != nil {
		return nil, toStatus(err)
	}
	if err := s.addMounts(ctx, &app, cfg.GetMounts()); err != nil {
		return nil, toStatus(err)
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
	privSandbox := req.GetSandboxConfig().GetLinux().GetSecurityContext().GetPrivileged()
	if err := applySecurity(cfg.GetLinux().GetSecurityContext(), privSandbox, &app); err != nil {
		return nil, toStatus(fmt.Errorf("container %s: security context: %w", cfg.GetMetadata().GetName(), err))
	}
	if err := applyResources(cfg.GetLinux().GetResources(), &app.Isolators); err != nil {
		return nil, toStatus(fmt.Errorf("container %s: resources: %w", cfg.GetMetadata().GetName(), err))
	}
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
	lw, err := s.startLogWriter(ctx, c)
	if err != nil {
		return nil, toStatus(err)
	}
	if err := apps.Start(ctx, s.appsConfig(), c.sb.pod.UUID, c.app); err != nil {
		if lw != nil {
			_ = lw.Kill()
		}
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
	if st, ok := c.status(); ok && st.State != apps.Running {
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

// status is the container's app's status, from the pod and manifest its
// sandbox was read with; false when the manifest lacks the app.
func (c *container) status() (apps.Status, bool) {
	for _, st := range apps.Statuses(c.sb.pod, c.sb.pm) {
		if st.Name == c.app {
			return st, true
		}
	}
	return apps.Status{}, false
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
	st, ok := c.status()
	if !ok {
		return nil, toStatus(errdefs.NotFound("container %s", req.GetContainerId()))
	}
	cs := &runtimeapi.ContainerStatus{
		Id:       c.meta.ID,
		Metadata: &runtimeapi.ContainerMetadata{Name: c.meta.Name, Attempt: c.meta.Attempt},
		State:    criState(st.State), CreatedAt: c.meta.CreatedAt,
		Image: &runtimeapi.ImageSpec{Image: c.meta.Image}, ImageRef: c.meta.ImageRef, ImageId: c.meta.ImageRef,
		Labels: c.meta.Labels, Annotations: c.meta.Annotations, LogPath: c.meta.LogPath,
		Mounts: c.criMounts(),
	}
	if !st.Started.IsZero() {
		cs.StartedAt = st.Started.UnixNano()
	}
	if st.State == apps.Exited {
		s.waitLogs(ctx, c)
	}
	if st.ExitCode != nil {
		cs.ExitCode = int32(*st.ExitCode) //nolint:gosec // G115: an exit status is a byte, or 128+signal
		cs.FinishedAt = st.Finished.UnixNano()
		cs.Reason = "Completed"
		if *st.ExitCode != 0 {
			cs.Reason = "Error"
		}
		if *st.ExitCode == 128+9 && s.oomKilled(ctx, c) {
			cs.Reason = "OOMKilled"
		}
	}
	return &runtimeapi.ContainerStatusResponse{Status: cs}, nil
}

// eachContainer calls fn for each container whose sandbox's ID starts
// with sandboxID, whose own ID starts with id ("" for any) and whose
// labels match, with the statuses of its sandbox's apps, read once per
// sandbox. fn's error ends the walk.
func (s *Server) eachContainer(ctx context.Context, sandboxID, id string, labels map[string]string, fn func(c *container, sts []apps.Status) error) error {
	all, err := s.sandboxes(ctx)
	if err != nil {
		return err
	}
	for _, sb := range all {
		if !strings.HasPrefix(sb.id, sandboxID) {
			continue
		}
		sts := apps.Statuses(sb.pod, sb.pm)
		for _, c := range s.containersOf(sb) {
			if !strings.HasPrefix(c.meta.ID, id) || !labelsMatch(c.meta.Labels, labels) {
				continue
			}
			if err := fn(c, sts); err != nil {
				return err
			}
		}
	}
	return nil
}

// ListContainers lists the containers of every sandbox, filtered by ID
// (or a prefix), sandbox, state and labels.
func (s *Server) ListContainers(ctx context.Context, req *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	f := req.GetFilter()
	resp := &runtimeapi.ListContainersResponse{}
	err := s.eachContainer(ctx, f.GetPodSandboxId(), f.GetId(), f.GetLabelSelector(), func(c *container, sts []apps.Status) error {
		i := slices.IndexFunc(sts, func(st apps.Status) bool { return st.Name == c.app })
		state := runtimeapi.ContainerState_CONTAINER_UNKNOWN
		if i >= 0 {
			state = criState(sts[i].State)
		}
		if f.GetState() != nil && f.GetState().GetState() != state {
			return nil
		}
		resp.Containers = append(resp.Containers, &runtimeapi.Container{
			Id: c.meta.ID, PodSandboxId: c.sb.id,
			Metadata: &runtimeapi.ContainerMetadata{Name: c.meta.Name, Attempt: c.meta.Attempt},
			Image:    &runtimeapi.ImageSpec{Image: c.meta.Image}, ImageRef: c.meta.ImageRef, ImageId: c.meta.ImageRef,
			State: state, CreatedAt: c.meta.CreatedAt, Labels: c.meta.Labels, Annotations: c.meta.Annotations,
		})
		return nil
	})
	if err != nil {
		return nil, toStatus(err)
	}
	return resp, nil
}
