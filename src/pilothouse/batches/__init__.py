"""The OpenAI Batch API, run by the gateway itself: files, batches and a store-backed runner.

Every line goes through the same pipeline as a live request (the batch's key,
its limits and budget, routing, guards, one usage row with exact cost, a
trace); line results and usage rows commit together, so a killed gateway
resumes a batch without losing or repeating a finished line.
"""
