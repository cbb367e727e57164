package serviceproxy

import (
	"fmt"

	"k8s.io/apimachinery/pkg/util/validation/field"
	kubeproxyconfigv1alpha1 "k8s.io/kube-proxy/config/v1alpha1"
	kubeproxyconfig "k8s.io/kubernetes/pkg/proxy/apis/config"
	proxyconfigscheme "k8s.io/kubernetes/pkg/proxy/apis/config/scheme"
	"k8s.io/kubernetes/pkg/proxy/apis/config/validation"
)

// defaultConfiguration returns kube-proxy's defaults: the versioned
// configuration defaulted and converted, as kube-proxy's NewOptions does.
func defaultConfiguration() *kubeproxyconfig.KubeProxyConfiguration {
	versioned := &kubeproxyconfigv1alpha1.KubeProxyConfiguration{}
	proxyconfigscheme.Scheme.Default(versioned)
	internal, err := proxyconfigscheme.Scheme.ConvertToVersion(versioned, kubeproxyconfig.SchemeGroupVersion)
	if err != nil {
		// The scheme registers both versions; this cannot fail at run time.
		panic(fmt.Sprintf("default kube-proxy configuration: %v", err))
	}
	return internal.(*kubeproxyconfig.KubeProxyConfiguration)
}

// validateConfiguration is kube-proxy's own validation.
func validateConfiguration(c *kubeproxyconfig.KubeProxyConfiguration) field.ErrorList {
	return validation.Validate(c)
}
