# No provider block here: every resource names its project and location, so
# this directory is both a root module (credentials from Application Default
# Credentials) and a child module (examples/basic configures the provider).

terraform {
  # 1.9: a variable's validation may refer to other variables (the HTTP
  # timeout must exceed the longest :wait).
  required_version = ">= 1.9.0, < 2.0.0"

  required_providers {
    archive = {
      source  = "hashicorp/archive"
      version = ">= 2.4.0, < 3.0.0"
    }
    # Majors 6 and 7: the 7.0 upgrade guide changes nothing this module uses.
    # `terraform init` writes the exact versions to .terraform.lock.hcl:
    # commit that file.
    google = {
      source  = "hashicorp/google"
      version = ">= 6.0.0, < 8.0.0"
    }
    random = {
      source  = "hashicorp/random"
      version = ">= 3.5.0, < 4.0.0"
    }
  }
}
