-- Argo CD health of GlobalPlane, Stamp and PrivateEndpointSet (missioncritical.dev), from the
-- operator's conditions: Ready=True is Healthy, Stalled=True is Degraded, a paused or observe-only
-- object is Suspended, anything else (including a spec the operator has not seen yet) is
-- Progressing. argocd-cm.yaml embeds this file once per kind; a test checks the copies agree.
local hs = { status = "Progressing", message = "waiting for the operator" }
if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  hs.message = "deleting: Azure resources are being removed"
  return hs
end
if obj.status == nil then
  return hs
end
local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and obj.status.observedGeneration ~= nil and obj.status.observedGeneration < generation then
  hs.message = "the operator has not seen the latest spec yet"
  return hs
end
local ready = nil
local stalled = nil
if obj.status.conditions ~= nil then
  for _, condition in ipairs(obj.status.conditions) do
    if condition.type == "Ready" then
      ready = condition
    elseif condition.type == "Stalled" then
      stalled = condition
    end
  end
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or "ready"
  return hs
end
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = stalled.message or "stalled"
  return hs
end
if obj.status.phase == "Paused" or obj.status.phase == "Observing" then
  hs.status = "Suspended"
  hs.message = "the operator reads and reports but does not write (" .. obj.status.phase .. ")"
  return hs
end
if ready ~= nil and ready.message ~= nil then
  hs.message = ready.message
end
return hs
