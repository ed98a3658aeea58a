"""The .genai spec language: parse, check, build a Spec, format."""
