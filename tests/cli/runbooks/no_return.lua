local x = runbook { name = "forgot", run = function() end }
