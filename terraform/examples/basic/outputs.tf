output "api_url" {
  description = "Base URL of the Operations API."
  value       = module.operations.api_url
}

output "dead_letter_subscription" {
  description = "Pull subscription holding jobs that failed every delivery attempt."
  value       = module.operations.dead_letter_subscription
}

output "jobs_topic" {
  description = "Pub/Sub topic of the jobs."
  value       = module.operations.jobs_topic
}

output "service_accounts" {
  description = "Service account emails of the deployment."
  value       = module.operations.service_accounts
}
