"""Governed egress as code: Pulumi components and pure manifest builders."""
