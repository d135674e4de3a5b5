variable "issuers" {
  description = "Trusted JWT issuers: issuer -> { keys = https URL of its JWKS or x509 map, audience = the aud its tokens must carry for this API (required) }."
  type = map(object({
    audience = optional(string)
    keys     = string
  }))
  default = {}
}

variable "policy" {
  description = "Who may do what: bindings of members to roles/operations.viewer or roles/operations.editor on name patterns."
  type = object({
    bindings = list(object({
      members     = list(string)
      permissions = optional(list(string))
      resources   = list(string)
      role        = optional(string)
    }))
  })
}

variable "project_id" {
  description = "Project to deploy into."
  type        = string
}

variable "region" {
  description = "Region of the functions."
  type        = string
}
