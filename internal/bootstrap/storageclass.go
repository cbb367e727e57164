package bootstrap

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
)

// DefaultStorageClassName is the name of the cluster's default
// StorageClass, as k3s and kind name theirs.
const DefaultStorageClassName = "local-path"

// The annotation that makes a StorageClass the default (upstream's
// storageutil.IsDefaultStorageClassAnnotation), and the label that marks
// the class as Run's, so that Run deletes only its own.
const (
	isDefaultClassAnnotation = "storageclass.kubernetes.io/is-default-class"
	managedByLabel           = "app.kubernetes.io/managed-by"
)

func desiredStorageClass(provisioner string) *storagev1.StorageClass {
	return &storagev1.StorageClass{
		ObjectMeta: metav1.ObjectMeta{
			Name:        DefaultStorageClassName,
			Annotations: map[string]string{isDefaultClassAnnotation: "true"},
			Labels:      map[string]string{managedByLabel: ManagedBy},
		},
		Provisioner:       provisioner,
		ReclaimPolicy:     ptr.To(corev1.PersistentVolumeReclaimDelete),
		VolumeBindingMode: ptr.To(storagev1.VolumeBindingWaitForFirstConsumer),
	}
}

// ensureStorageClass creates the default StorageClass with provisioner
// when no class of its name exists. An existing class is left as it is: a
// StorageClass's provisioner and parameters are immutable, and a user who
// took the default annotation off, or replaced the class with one of their
// own, meant it.
func ensureStorageClass(ctx context.Context, client kubernetes.Interface, provisioner string) error {
	return wait.PollUntilContextCancel(ctx, retryInterval, true, func(ctx context.Context) (bool, error) {
		classes := client.StorageV1().StorageClasses()
		_, err := classes.Get(ctx, DefaultStorageClassName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			var sc *storagev1.StorageClass
			sc, err = classes.Create(ctx, desiredStorageClass(provisioner), metav1.CreateOptions{FieldManager: "pocketkube"})
			if err == nil {
				klog.FromContext(ctx).Info("Created StorageClass", "storageClass", sc.Name, "provisioner", provisioner)
			}
			if apierrors.IsAlreadyExists(err) {
				err = nil
			}
		}
		if err != nil {
			klog.FromContext(ctx).V(2).Info("Creating the default StorageClass, will retry", "err", err)
		}
		return err == nil, nil
	})
}

// removeStorageClass deletes the default StorageClass if Run created it:
// its provisioner no longer runs, and a claim of it would stay Pending.
// A class of the same name that a user brought is left alone.
func removeStorageClass(ctx context.Context, client kubernetes.Interface) error {
	return wait.PollUntilContextCancel(ctx, retryInterval, true, func(ctx context.Context) (bool, error) {
		classes := client.StorageV1().StorageClasses()
		sc, err := classes.Get(ctx, DefaultStorageClassName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		if err == nil && sc.Labels[managedByLabel] != ManagedBy {
			return true, nil
		}
		if err == nil {
			err = classes.Delete(ctx, sc.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &sc.UID}})
			if err == nil {
				klog.FromContext(ctx).Info("Deleted StorageClass", "storageClass", sc.Name)
			}
			if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
				return false, nil // gone or replaced meanwhile: look again
			}
		}
		if err != nil {
			klog.FromContext(ctx).V(2).Info("Deleting the default StorageClass, will retry", "err", err)
		}
		return err == nil, nil
	})
}

// storageClass runs ensureStorageClass or removeStorageClass, as
// provisioner asks.
func storageClass(ctx context.Context, client kubernetes.Interface, provisioner string) error {
	if provisioner == "" {
		if err := removeStorageClass(ctx, client); err != nil {
			return fmt.Errorf("remove StorageClass %s: %w", DefaultStorageClassName, err)
		}
		return nil
	}
	if err := ensureStorageClass(ctx, client, provisioner); err != nil {
		return fmt.Errorf("create StorageClass %s: %w", DefaultStorageClassName, err)
	}
	return nil
}
