"""Salesforce CRM connector: target-salesforce-crm and tap-salesforce-crm."""
