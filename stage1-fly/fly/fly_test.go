package fly

import (
	"github.com/nosecone/nscn/internal/testutil"
)

// testApp and testPod build the apps and pod manifests of the tests.
var (
	testApp = testutil.RuntimeApp
	testPod = testutil.PodManifest
)

func ptr[T any](v T) *T { return &v }
