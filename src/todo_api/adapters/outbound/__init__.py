"""Outbound HTTP: webhook deliveries (Standard Webhooks), the Dapr publisher, and the guard that
keeps webhooks from reaching addresses inside our network (SSRF)."""
