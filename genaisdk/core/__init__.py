"""The leaves every other layer may use: number formatting (`numbers`), names and
did-you-mean (`names`), the table of diagnostic codes (`codes`), the JSON form of attrs
values (`serialize`), text made safe for a terminal (`safe`) and new files' permissions
(`files`). Nothing here imports
another genaisdk module but `genaisdk.diagnostics`, which sits beside it."""
