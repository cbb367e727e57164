/*
   Copyright The containerd Authors.

   Licensed under the Apache License, Version 2.0 (the "License");
   you may not use this file except in compliance with the License.
   You may obtain a copy of the License at

       http://www.apache.org/licenses/LICENSE-2.0

   Unless required by applicable law or agreed to in writing, software
   distributed under the License is distributed on an "AS IS" BASIS,
   WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
   See the License for the specific language governing permissions and
   limitations under the License.
*/

// SPDX-FileCopyrightText: Copyright The containerd Authors
// SPDX-FileCopyrightText: Copyright The Moby Authors
// SPDX-License-Identifier: Apache-2.0
//
// File copied and customized based on
// https://github.com/moby/profiles/blob/seccomp/v0.2.3/seccomp/kernel_linux.go

// This file is containerd's pkg/kernelversion/kernel_linux.go
// (github.com/containerd/containerd/v2 v2.4.2) with its names unexported
// (pocketkube: KernelVersion is kernelVersion, GreaterEqualThan is
// kernelGreaterEqualThan): default.go's one kernel check needs it.

package seccomp

import (
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// kernelVersion holds information about the kernel.
type kernelVersion struct {
	Kernel uint64 // Version of the Kernel (i.e., the "4" in "4.1.2-generic")
	Major  uint64 // Major revision of the Kernel (i.e., the "1" in "4.1.2-generic")
}

// String implements fmt.Stringer for kernelVersion
func (k *kernelVersion) String() string {
	if k.Kernel > 0 || k.Major > 0 {
		return fmt.Sprintf("%d.%d", k.Kernel, k.Major)
	}
	return ""
}

// getKernelVersion gets the current kernel version.
var getKernelVersion = sync.OnceValues(func() (*kernelVersion, error) {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return nil, err
	}
	// Convert the NUL-terminated release field before parsing.
	return parseRelease(unix.ByteSliceToString(uts.Release[:]))
})

// parseRelease parses a string and creates a kernelVersion based on it.
func parseRelease(release string) (*kernelVersion, error) {
	var version kernelVersion

	// We're only make sure we get the "kernel" and "major revision". Sometimes we have
	// 3.12.25-gentoo, but sometimes we just have 3.12-1-amd64.
	_, err := fmt.Sscanf(release, "%d.%d", &version.Kernel, &version.Major)
	if err != nil {
		return nil, fmt.Errorf("failed to parse kernel version %q: %w", release, err)
	}
	return &version, nil
}

// kernelGreaterEqualThan checks if the host's kernel version is greater than, or
// equal to the given kernel version v. Only "kernel version" and "major revision"
// can be specified (e.g., "3.12") and will be taken into account, which means
// that 3.12.25-gentoo and 3.12-1-amd64 are considered equal (kernel: 3, major: 12).
func kernelGreaterEqualThan(minVersion kernelVersion) (bool, error) {
	kv, err := getKernelVersion()
	if err != nil {
		return false, err
	}
	if kv.Kernel > minVersion.Kernel {
		return true, nil
	}
	if kv.Kernel == minVersion.Kernel && kv.Major >= minVersion.Major {
		return true, nil
	}
	return false, nil
}
