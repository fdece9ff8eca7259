// Generated from examples/rust-memcached/crd.json (the CRD both examples ship)
// by `cargo xtask build`; do not edit.
export default {
  "apiVersion": "apiextensions.k8s.io/v1",
  "kind": "CustomResourceDefinition",
  "metadata": {
    "name": "memcacheds.cache.operon.dev"
  },
  "spec": {
    "group": "cache.operon.dev",
    "scope": "Namespaced",
    "names": {
      "plural": "memcacheds",
      "singular": "memcached",
      "kind": "Memcached",
      "listKind": "MemcachedList",
      "shortNames": ["mc"]
    },
    "versions": [
      {
        "name": "v1alpha1",
        "served": true,
        "storage": true,
        "subresources": {
          "status": {},
          "scale": {
            "specReplicasPath": ".spec.size",
            "statusReplicasPath": ".status.readyReplicas"
          }
        },
        "additionalPrinterColumns": [
          {
            "name": "Size",
            "type": "integer",
            "description": "Desired number of memcached pods",
            "jsonPath": ".spec.size"
          },
          {
            "name": "Ready",
            "type": "integer",
            "description": "Pods ready to serve",
            "jsonPath": ".status.readyReplicas"
          },
          {
            "name": "Age",
            "type": "date",
            "jsonPath": ".metadata.creationTimestamp"
          }
        ],
        "schema": {
          "openAPIV3Schema": {
            "description": "Memcached runs a memcached Deployment and a Service in front of it.",
            "type": "object",
            "properties": {
              "apiVersion": { "description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources", "type": "string" },
              "kind": { "description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds", "type": "string" },
              "metadata": { "type": "object" },
              "spec": {
                "description": "The desired memcached deployment.",
                "type": "object",
                "required": ["size"],
                "properties": {
                  "size": {
                    "description": "Number of memcached pods.",
                    "type": "integer",
                    "format": "int32",
                    "minimum": 0
                  },
                  "image": {
                    "description": "Container image.",
                    "type": "string",
                    "default": "memcached:1.6-alpine"
                  },
                  "port": {
                    "description": "Port memcached listens on in the pod.",
                    "type": "integer",
                    "format": "int32",
                    "minimum": 1,
                    "maximum": 65535,
                    "default": 11211
                  }
                }
              },
              "status": {
                "description": "What the reconciler observed.",
                "type": "object",
                "properties": {
                  "readyReplicas": {
                    "description": "Pods of the Deployment that are ready.",
                    "type": "integer",
                    "format": "int32"
                  },
                  "observedGeneration": {
                    "description": "Set by the host after each reconcile: the metadata.generation of the spec last reconciled successfully. Left unchanged while reconciles fail.",
                    "type": "integer",
                    "format": "int64"
                  },
                  "conditions": {
                    "description": "Set by the plugin: Ready, True with reason AllReplicasReady when all spec.size pods are ready, else False with reason Progressing; the host adds Synced, the outcome of the last reconcile.",
                    "type": "array",
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["type"],
                    "items": {
                      "type": "object",
                      "required": ["type", "status", "lastTransitionTime", "reason", "message"],
                      "properties": {
                        "type": { "description": "Type of condition in CamelCase, e.g. Ready.", "type": "string", "maxLength": 316 },
                        "status": { "description": "Status of the condition, one of True, False, Unknown.", "type": "string", "enum": ["True", "False", "Unknown"] },
                        "reason": { "description": "A programmatic identifier, in CamelCase, of the reason for the condition's last transition.", "type": "string", "maxLength": 1024 },
                        "message": { "description": "A human readable message indicating details about the transition. This may be an empty string.", "type": "string", "maxLength": 32768 },
                        "lastTransitionTime": { "description": "The last time the condition transitioned from one status to another (RFC 3339).", "type": "string", "format": "date-time" },
                        "observedGeneration": { "description": "The .metadata.generation that the condition was set based upon. For instance, if .metadata.generation is currently 12, but the .status.conditions[x].observedGeneration is 9, the condition is out of date with respect to the current state of the instance.", "type": "integer", "format": "int64", "minimum": 0 }
                      }
                    }
                  }
                }
              }
            }
          }
        }
      }
    ]
  }
};
