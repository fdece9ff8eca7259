# Generated from examples/rust-memcached/crd.json (the CRD both examples ship)
# by `cargo xtask build`; do not edit.
CRD = r"""{
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
              "apiVersion": { "type": "string" },
              "kind": { "type": "string" },
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
                    "type": "integer",
                    "format": "int64"
                  },
                  "conditions": {
                    "type": "array",
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["type"],
                    "items": {
                      "type": "object",
                      "required": ["type", "status", "lastTransitionTime", "reason", "message"],
                      "properties": {
                        "type": { "type": "string", "maxLength": 316 },
                        "status": { "type": "string", "enum": ["True", "False", "Unknown"] },
                        "reason": { "type": "string", "maxLength": 1024 },
                        "message": { "type": "string", "maxLength": 32768 },
                        "lastTransitionTime": { "type": "string", "format": "date-time" },
                        "observedGeneration": { "type": "integer", "format": "int64", "minimum": 0 }
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
}"""
