package stage1abi

import (
	"testing"
)

func TestCheckInterfaceVersion(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    int
		wantErr bool
	}{
		{name: "absent means 1", in: "", want: 1},
		{name: "supported", in: "4", want: 4},
		{name: "newest", in: "16", want: MaxInterfaceVersion},
		{name: "too new", in: "17", wantErr: true},
		{name: "zero", in: "0", wantErr: true},
		{name: "not a number", in: "v5", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CheckInterfaceVersion(tt.in)
			if (err != nil) != tt.wantErr || (err == nil && got != tt.want) {
				t.Errorf("CheckInterfaceVersion(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestFlagVersionsAreSupported(t *testing.T) {
	if InterfaceVersionAppTTY != MaxInterfaceVersion {
		t.Errorf("the newest interface version is %d, but stage0 accepts up to %d", InterfaceVersionAppTTY, MaxInterfaceVersion)
	}
	for _, v := range []int{InterfaceVersionHostname, InterfaceVersionDisable, InterfaceVersionDNSConf, InterfaceVersionLocalConfig, InterfaceVersionIPC, InterfaceVersionMDSPort, InterfaceVersionReady, InterfaceVersionMDSTokenFile, InterfaceVersionPrivateUsers, InterfaceVersionApps, InterfaceVersionAppPaths, InterfaceVersionMountOptions, InterfaceVersionAppPID1, InterfaceVersionPID, InterfaceVersionAppTTY} {
		if v < MinInterfaceVersion || v > MaxInterfaceVersion {
			t.Errorf("interface version %d is outside %d..%d", v, MinInterfaceVersion, MaxInterfaceVersion)
		}
	}
}

func TestPodPaths(t *testing.T) {
	tests := []struct {
		name, got, want string
	}{
		{name: "stage2 dir", got: Stage2Dir("web"), want: "stage1/rootfs/opt/stage2/web"},
		{name: "app rootfs", got: AppRootfs("web"), want: "stage1/rootfs/opt/stage2/web/rootfs"},
		{name: "status file", got: AppStatusFile("web"), want: "stage1/rootfs/rkt/status/web"},
		{name: "started file", got: AppStartedFile("web"), want: "stage1/rootfs/rkt/started/web"},
		{name: "app info", got: AppInfoDir("web"), want: "appsinfo/web"},
		{name: "empty volume", got: EmptyVolumeDir("cache"), want: "stage1/rootfs/volumes/cache"},
		{name: "app log", got: AppLogFile("web"), want: "logs/web.log"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}

func TestParseAppPID1(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    bool
		wantErr bool
	}{
		{name: "true", in: "true", want: true},
		{name: "false", in: "false"},
		{name: "empty", in: "", wantErr: true},
		{name: "capitalised", in: "True", wantErr: true},
		{name: "yes", in: "yes", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseAppPID1(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("ParseAppPID1(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func FuzzParseAppPID1(f *testing.F) {
	f.Add("true")
	f.Add("false")
	f.Add("TRUE ")
	f.Fuzz(func(t *testing.T, in string) {
		got, err := ParseAppPID1(in)
		// Only the two exact words parse, each to itself.
		if (err == nil) != (in == "true" || in == "false") || got != (in == "true") {
			t.Fatalf("ParseAppPID1(%q) = %v, %v", in, got, err)
		}
	})
}

func TestParsePodRootfs(t *testing.T) {
	for _, tt := range []struct {
		name    string
		in      string
		want    bool
		wantErr bool
	}{
		{name: "absent", in: ""},
		{name: "image", in: "image"},
		{name: "empty", in: "empty", want: true},
		{name: "other", in: "none", wantErr: true},
		{name: "case", in: "Empty", wantErr: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePodRootfs(tt.in)
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Fatalf("ParsePodRootfs(%q) = %v, %v", tt.in, got, err)
			}
		})
	}
}
