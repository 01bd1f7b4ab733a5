package timeline

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"
)

// fakeClock returns the readings it is given, one per call.
func fakeClock(readings ...time.Duration) func() time.Duration {
	return func() time.Duration {
		r := readings[0]
		if len(readings) > 1 {
			readings = readings[1:]
		}
		return r
	}
}

func envOf(kv ...string) func(string) string {
	m := map[string]string{}
	for _, e := range kv {
		k, v, _ := strings.Cut(e, "=")
		m[k] = v
	}
	return func(k string) string { return m[k] }
}

func TestFromEnv(t *testing.T) {
	tests := []struct {
		name  string
		env   []string
		clock []time.Duration
		want  string // what one Mark("p") prints; "" when off
	}{
		{name: "off", env: nil, clock: []time.Duration{time.Second}},
		{name: "off unless 1", env: []string{EnvEnable + "=yes"}, clock: []time.Duration{time.Second}},
		{name: "own base", env: []string{EnvEnable + "=1"}, clock: []time.Duration{time.Second, time.Second + 1500*time.Microsecond}, want: Prefix + "+1.500ms s0 p\n"},
		{name: "inherited base", env: []string{EnvEnable + "=1", EnvBase + "=1000000000"}, clock: []time.Duration{5 * time.Second, 3 * time.Second}, want: Prefix + "+2000.000ms s0 p\n"},
		{name: "bad base ignored", env: []string{EnvEnable + "=1", EnvBase + "=soon"}, clock: []time.Duration{time.Second, time.Second + time.Millisecond}, want: Prefix + "+1.000ms s0 p\n"},
		{name: "negative base ignored", env: []string{EnvEnable + "=1", EnvBase + "=-5"}, clock: []time.Duration{time.Second, time.Second}, want: Prefix + "+0.000ms s0 p\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			clock := fakeClock(tt.clock...)
			tl := fromEnv(envOf(tt.env...), "s0", clock(), clock, &out)
			if (tl == nil) != (tt.want == "") {
				t.Fatalf("fromEnv on=%v, want on=%v", tl != nil, tt.want != "")
			}
			tl.Mark("p")
			if got := out.String(); got != tt.want {
				t.Errorf("Mark printed %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNilTimelineIsSilent(t *testing.T) {
	var tl *Timeline
	tl.Mark("x")
	if env := tl.Env(); env != nil {
		t.Errorf("Env of an off timeline = %q, want none", env)
	}
}

// A child handed Env's variables prints on its parent's axis.
func TestChildSharesBase(t *testing.T) {
	var out bytes.Buffer
	parent := fromEnv(envOf(EnvEnable+"=1"), "stage0", 10*time.Second, fakeClock(10*time.Second+time.Millisecond), &out)
	parent.Mark("start")
	child := fromEnv(envOf(parent.Env()...), "stage1", 10*time.Second+6*time.Millisecond, fakeClock(10*time.Second+7*time.Millisecond), &out)
	child.Mark("exec app")
	pts, err := Parse(&out)
	if err != nil {
		t.Fatal(err)
	}
	want := []Point{{At: time.Millisecond, Proc: "stage0", Phase: "start"}, {At: 7 * time.Millisecond, Proc: "stage1", Phase: "exec-app"}}
	if len(pts) != len(want) {
		t.Fatalf("Parse = %+v, want %+v", pts, want)
	}
	for i := range want {
		if pts[i] != want[i] {
			t.Errorf("point %d = %+v, want %+v", i, pts[i], want[i])
		}
	}
}

// A process started with a base in its environment marks its own start
// on that axis; the process whose start is the base does not.
func TestMarkProcessStart(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		want string
	}{
		{name: "own base", env: []string{EnvEnable + "=1"}},
		{name: "inherited base", env: []string{EnvEnable + "=1", EnvBase + "=1000000000"}, want: Prefix + "+2500.000ms s1 process-started\n"},
		{name: "off", env: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			tl := fromEnv(envOf(tt.env...), "s1", 3500*time.Millisecond, fakeClock(4*time.Second), &out)
			tl.MarkProcessStart()
			if got := out.String(); got != tt.want {
				t.Errorf("MarkProcessStart printed %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []Point
		wantErr bool
	}{
		{
			name: "other lines skipped", in: "level=DEBUG msg=x\n" + Prefix + "+2.000ms stage1 b\nnoise\n" + Prefix + "+1.250ms stage0 a\n",
			want: []Point{{At: 1250 * time.Microsecond, Proc: "stage0", Phase: "a"}, {At: 2 * time.Millisecond, Proc: "stage1", Phase: "b"}},
		},
		{
			name: "prefixed by a journal or console", in: "[  OK  ] " + Prefix + "+0.500ms app:web started\n",
			want: []Point{{At: 500 * time.Microsecond, Proc: "app:web", Phase: "started"}},
		},
		{name: "empty", in: ""},
		{name: "missing unit", in: Prefix + "+1.0 stage0 a\n", wantErr: true},
		{name: "missing sign", in: Prefix + "1.0ms stage0 a\n", wantErr: true},
		{name: "too few fields", in: Prefix + "+1.0ms stage0\n", wantErr: true},
		{name: "not a number", in: Prefix + "+x.yms stage0 a\n", wantErr: true},
		{name: "NaN", in: Prefix + "+NaNms stage0 a\n", wantErr: true},
		{name: "absurd", in: Prefix + "+1e300ms stage0 a\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(strings.NewReader(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("Parse error = %v, wantErr %v", err, tt.wantErr)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("Parse = %+v, want %+v", got, tt.want)
			}
			for i := range tt.want {
				if got[i] != tt.want[i] {
					t.Errorf("point %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestFormat(t *testing.T) {
	var out bytes.Buffer
	pts := []Point{{At: time.Millisecond, Proc: "stage0", Phase: "start"}, {At: 3500 * time.Microsecond, Proc: "stage1", Phase: "exec"}}
	if err := Format(&out, pts); err != nil {
		t.Fatal(err)
	}
	want := "    1.000 ms     +1.000 ms  stage0       start\n" +
		"    3.500 ms     +2.500 ms  stage1       exec\n"
	if out.String() != want {
		t.Errorf("Format =\n%s\nwant\n%s", out.String(), want)
	}
}

func TestMonotonicAdvances(t *testing.T) {
	a := Monotonic()
	time.Sleep(2 * time.Millisecond)
	if b := Monotonic(); b-a < 2*time.Millisecond {
		t.Errorf("CLOCK_MONOTONIC moved %v over a 2ms sleep", b-a)
	}
}

// FuzzParse: Parse never panics, and what Mark writes, Parse reads back.
func FuzzParse(f *testing.F) {
	f.Add("", "stage0", "start", int64(1500000))
	f.Add(Prefix+"+1.0ms a b\n", "app:x y", "z", int64(-3))
	f.Add(Prefix+"+NaNms a b", "", "", int64(0))
	f.Fuzz(func(t *testing.T, raw, proc, phase string, off int64) {
		_, _ = Parse(strings.NewReader(raw))
		if off < -int64(time.Hour) || off > int64(time.Hour) || strings.Contains(proc+phase, Prefix) {
			return
		}
		var out bytes.Buffer
		tl := &Timeline{proc: proc, base: 0, now: func() time.Duration { return time.Duration(off) }, w: &out}
		tl.Mark(phase)
		pts, err := Parse(&out)
		if err != nil {
			t.Fatalf("Parse(Mark output %q): %v", out.String(), err)
		}
		if len(pts) != 1 || pts[0].Proc != word(proc) || pts[0].Phase != word(phase) {
			t.Fatalf("Parse(%q) = %+v", out.String(), pts)
		}
		if d := pts[0].At - time.Duration(off); d < -time.Microsecond || d > time.Microsecond {
			t.Fatalf("offset %v read back as %v", time.Duration(off), pts[0].At)
		}
	})
}

func TestStrip(t *testing.T) {
	got := Strip([]string{"PATH=/bin", EnvEnable + "=1", EnvBase + "=42", "NSCN_TIMELINEX=keep", "TERM=xterm"})
	want := []string{"PATH=/bin", "NSCN_TIMELINEX=keep", "TERM=xterm"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("Strip = %q, want %q", got, want)
	}
}

func TestNewAndBase(t *testing.T) {
	if tl := New("app:x", 0, io.Discard); tl != nil || tl.Base() != 0 {
		t.Errorf("New with no base = %v, want off", tl)
	}
	tl := New("app:x", 5*time.Second, io.Discard)
	if tl == nil || tl.Base() != 5*time.Second {
		t.Fatalf("New(5s).Base() = %v", tl.Base())
	}
}

func TestContext(t *testing.T) {
	if FromContext(context.Background()) != nil {
		t.Error("a bare context carries a timeline")
	}
	tl := New("x", time.Second, io.Discard)
	if got := FromContext(NewContext(context.Background(), tl)); got != tl {
		t.Errorf("FromContext = %p, want %p", got, tl)
	}
}
