# The Operations service in one project, with the module's defaults: a
# public HTTPS API that checks every token itself, Google OAuth access tokens
# accepted through tokeninfo, plus the JWT issuers and the policy you give.
#
# Copied out of this repository, point `source` at it instead, e.g.
# "git::https://github.com/OWNER/REPO.git//terraform?ref=v1.0.0" (the module
# bundles main.py and lib/ from the directory above it).

provider "google" {
  project = var.project_id
  region  = var.region
}

module "operations" {
  source = "../.."

  issuers    = var.issuers
  policy     = var.policy
  project_id = var.project_id
  region     = var.region
}
