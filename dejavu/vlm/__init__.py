"""The vision-language test (definitions §14): how much better a VLM's caption-alone queries
reveal the objects of its training records than a reference VLM's."""
