// Package volcano only imports the Volcano API package build.sh generates a CRD from.
package volcano

import _ "volcano.sh/apis/pkg/apis/topology/v1alpha1"
