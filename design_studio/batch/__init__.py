"""Batch runs: a job file of prompts -> concepts and meshes, resumable and spread over processes."""
